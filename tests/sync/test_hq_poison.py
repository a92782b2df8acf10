"""Poison messages at a running HQ: each is one counted rejection, and the link stays up.

A message HQ cannot take used to drop HQ's connection; the broker delivered it again on the next
connect, for ever, and nothing else from that terminal got through (33 reconnects in 30 s).
"""

import json
import time

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from models.canonical import ZERO_HASH
from models.journal import TransactionDraft, seal
from models.reasons import Reason
from sync.envelope import Signer, public_key_b64
from sync.keys import key_id
from sync.topics import Topics
from tests.sync.broker import Broker, wait_for
from tests.sync.messages import SITE, card_number
from tests.sync.sites import Site

pytestmark = pytest.mark.integration
OTHER = "gate-02"


def _record_with_an_unknown_purse() -> dict:
    draft = TransactionDraft(
        "meal", "2026-11-23T12:00:00+08:00", 1, "card", "allow", Reason.ALLOWED, 1,
        card=card_number(1), holder_id="H1", amount=5, split=(("gold", 5),),
    )  # fmt: skip
    return seal(draft, seq=1, tx_id="tx-poison-1", prev_hash=ZERO_HASH, epoch="")


def test_poison_at_a_running_hq_is_counted_and_the_rest_goes_on(broker: Broker, tmp_path) -> None:
    site = Site(tmp_path, broker)
    try:
        server = site.start_hq()
        site.terminal.start()
        assert site.synced()
        key = Ed25519PrivateKey.generate()
        other = Signer(key_id(key.public_key(), "t-"), key)
        site.office.enroll(OTHER, public_key_b64(key.public_key()))
        connects, rejected = server.link.connects, server.rejected

        signed = json.loads(other.seal("tx", SITE, {"records": []}, tid=OTHER))
        lone_surrogate = json.dumps(signed).replace(f'"{signed["id"]}"', '"\\ud800"')
        unknown_purse = other.seal(
            "tx", SITE, {"records": [_record_with_an_unknown_purse()]}, tid=OTHER
        )
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="rogue")
        client.connect("127.0.0.1", broker.port)
        topic = Topics("ykt/v1", SITE).terminal_topic("tx", OTHER)
        for payload in (lone_surrogate.encode(), unknown_purse):
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        client.disconnect()

        site.terminal.commit_payments(3)
        assert wait_for(lambda: site.hq_tx() == [(1, 1), (2, 1), (3, 1)], 15), site.hq_tx()
        assert wait_for(lambda: server.rejected == rejected + 1, 5), server.rejected
        alarms = site.db.conn.execute(
            "SELECT kind, detail FROM alarms WHERE tid = ?", (OTHER,)
        ).fetchall()
        assert [(k, json.loads(d)["error"]) for k, d in alarms] == [
            ("posting_refused", "unknown purse gold")
        ]
        kept = site.db.conn.execute("SELECT count(*) FROM tx WHERE tid = ?", (OTHER,)).fetchone()
        assert kept == (1,)  # a signed record is evidence: stored, raised, not thrown away
        time.sleep(1.0)  # anything redelivered for ever would show as reconnects by now
        assert server.link.connects == connects
    finally:
        site.close()
