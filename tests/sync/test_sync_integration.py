"""Terminal and reference HQ over a real mosquitto on a loopback port."""

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devtools.hq.cli import main as hq_main
from terminal.store.salvage import salvage_quarantined
from tests.sync.broker import Broker, wait_for
from tests.sync.messages import SITE, TID, card_number, holder
from tests.sync.sites import Site, restarted

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path: Path, broker: Broker) -> Iterator[Site]:
    built = Site(tmp_path, broker)
    yield built
    built.close()


def test_fresh_terminal_syncs_by_snapshot_then_deltas(site: Site) -> None:
    site.start_hq()
    assert site.published()
    time.sleep(0.5)  # queued publishes reach the broker before the terminal ever subscribes
    site.terminal.start()
    assert site.synced(), site.terminal.port.marks()
    marks = site.terminal.port.marks()
    assert marks.snapshot_id is not None
    assert site.terminal.status(3) == "active"
    with site.terminal.store.read() as conn:
        assert conn.execute("SELECT balance FROM purses WHERE account = 'H1'").fetchone() == (
            100_000,
        )
    site.office.upsert_holder(holder("H9"))
    site.office.issue_card("H9", card_number(9))
    assert site.synced()
    assert site.terminal.status(9) == "active"
    assert site.terminal.port.marks().snapshot_id == marks.snapshot_id  # deltas, no new snapshot


def test_lost_card_is_denied_within_a_second(site: Site) -> None:
    site.start_hq()
    site.terminal.start()
    assert site.synced()
    started = time.monotonic()
    site.office.set_status(card_number(2), "lost")
    assert wait_for(lambda: site.terminal.status(2) == "lost", 1.0)
    assert time.monotonic() - started < 1.0
    assert site.synced()
    assert site.terminal.status(2) == "lost"


def test_a_gap_triggers_a_resync_answered_with_deltas(site: Site) -> None:
    site.start_hq()
    site.terminal.start()
    assert site.synced()
    before = site.terminal.port.marks().snapshot_id
    # Two changes the broker "loses": HQ records them as published without sending them.
    site.stop_hq()
    site.office.upsert_holder(holder("H7"))
    site.office.issue_card("H7", card_number(7))
    with site.db.tx() as conn:
        site.db.set_meta(conn, "published_seq", str(site.db.head_seq()))
    site.office.upsert_holder(holder("H8"))  # this one arrives, after a gap
    site.start_hq()
    assert site.synced()
    assert site.terminal.status(7) == "active"
    assert site.terminal.service.engine.resyncs >= 1
    assert site.terminal.port.marks().snapshot_id == before  # a short gap: deltas, no snapshot


def test_outbox_drains_after_a_broker_outage_nothing_lost_or_doubled(
    site: Site, broker: Broker
) -> None:
    site.start_hq()
    site.terminal.start()
    assert site.synced()
    broker.stop()
    site.terminal.commit_payments(300)  # taps go on while the broker is away
    broker.start()
    assert wait_for(lambda: site.terminal.port.outbox_stats().tx_backlog == 0, 20)
    held = site.hq_tx()
    assert [seq for seq, _ in held] == list(range(1, 301))
    assert all(count == 1 for _, count in held)
    debits = site.db.conn.execute("SELECT count(*), sum(delta) FROM ledger WHERE reason = 'debit'")
    assert debits.fetchone() == (300, -30_000)
    # HQ echoes the debits back as ledger changes: nothing stays pending at the terminal.
    assert site.synced()
    with site.terminal.store.read() as conn:
        assert conn.execute("SELECT balance FROM purses WHERE account = 'H1'").fetchone() == (
            70_000,
        )


def test_a_quarantined_database_starts_a_journal_hq_tells_apart(site: Site) -> None:
    site.start_hq()
    site.terminal.start()
    assert site.synced()
    site.terminal.commit_payments(20)
    assert wait_for(lambda: site.terminal.port.outbox_stats().tx_backlog == 0, 20)
    old_epoch = site.terminal.port.marks().journal_epoch
    site.terminal.stop()
    db = site.terminal.root / "terminal.db"
    db.write_bytes(b"this is not a database" * 100)  # damaged beyond reading: quarantined
    site.terminal = restarted(site.terminal).start()
    new_epoch = site.terminal.port.marks().journal_epoch
    assert new_epoch and new_epoch != old_epoch
    assert site.synced(20)  # refilled by a snapshot
    site.terminal.commit_payments(15)  # the new journal's seq 1..15
    assert wait_for(lambda: site.terminal.port.outbox_stats().tx_backlog == 0, 20)
    assert site.hq_tx(old_epoch) == [(seq, 1) for seq in range(1, 21)]
    assert site.hq_tx(new_epoch) == [(seq, 1) for seq in range(1, 16)]
    debits = site.db.conn.execute("SELECT count(*), sum(delta) FROM ledger WHERE reason = 'debit'")
    assert debits.fetchone() == (35, -3_500)  # every payment of both journals, once
    kinds = [k for (k,) in site.db.conn.execute("SELECT kind FROM alarms ORDER BY id")]
    assert "journal_reset" in kinds
    assert wait_for(
        lambda: (
            "database_quarantined"
            in [k for (k,) in site.db.conn.execute("SELECT kind FROM alarms")]
        ),
        10,
    )


def test_records_hq_never_had_are_salvaged_from_the_quarantined_file(site: Site) -> None:
    site.start_hq()
    site.terminal.start()
    assert site.synced()
    site.terminal.commit_payments(10)
    assert wait_for(lambda: site.terminal.port.outbox_stats().tx_backlog == 0, 20)
    site.stop_hq()
    site.terminal.service.stop()  # offline: the broker does not hold them for HQ either
    site.terminal.running = False
    site.terminal.commit_payments(12)  # charged, never uploaded
    old_epoch = site.terminal.port.marks().journal_epoch
    site.terminal.stop()
    db = site.terminal.root / "terminal.db"
    with db.open("r+b") as file:
        file.write(b"\0" * 100)  # the header gone: not a database any more, the rows still there
    site.terminal = restarted(site.terminal)
    [salvage] = salvage_quarantined(site.terminal.store)
    assert [r["seq"] for r in salvage.records] == list(range(1, 23))  # HQ's ack was unreadable
    site.terminal.start()
    site.start_hq()
    assert wait_for(lambda: site.hq_tx(old_epoch) == [(seq, 1) for seq in range(1, 23)], 20)
    debits = site.db.conn.execute("SELECT count(*), sum(delta) FROM ledger WHERE reason = 'debit'")
    assert debits.fetchone() == (22, -2_200)  # the 12 HQ never had, and the 10 not twice
    # HQ named them in its txack: none left to send.
    assert wait_for(lambda: site.terminal.port.salvaged_due(100, "9999") == [], 20)
    kinds = [k for (k,) in site.db.conn.execute("SELECT kind FROM alarms ORDER BY id")]
    assert "records_salvaged" in kinds and "tx_differs" not in kinds


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait(5)


def test_hq_killed_mid_upload_loses_and_doubles_nothing(site: Site) -> None:
    site.terminal.commit_payments(3000)
    hq_args = ("-m", "devtools.hq", "--dir", str(site.hq_root), "serve")
    hq = _spawn(*hq_args)
    try:
        site.terminal.start()
        assert wait_for(lambda: len(site.hq_tx()) > 0, 15, interval=0.005)
        _kill(hq)  # SIGKILL, somewhere in the middle of the upload
        partial = len(site.hq_tx())
        hq = _spawn(*hq_args)
        assert wait_for(lambda: site.terminal.port.outbox_stats().tx_backlog == 0, 40)
    finally:
        _kill(hq)
    held = site.hq_tx()
    assert partial < 3000, "the upload finished before HQ was killed: the test proved nothing"
    assert [seq for seq, _ in held] == list(range(1, 3001))
    assert all(count == 1 for _, count in held)
    debits = site.db.conn.execute("SELECT count(*) FROM ledger WHERE reason = 'debit'")
    assert debits.fetchone()[0] == 3000


def test_terminal_killed_mid_batch_applies_each_change_once(site: Site, broker: Broker) -> None:
    site.start_hq()
    site.terminal.stop()
    args = ("-m", "tests.sync.run_terminal", str(site.terminal.root), str(site.hq_root))
    terminal = _spawn(*args, str(broker.port))
    start = site.db.head_seq()
    try:
        assert wait_for(lambda: _applied(site) == start, 15)
        with site.db.tx() as conn:  # 4,000 ledger changes arrive as 8 batches of 500
            for _ in range(4000):
                site.office.post(conn, "H2", "cash", 10, "topup")
        assert wait_for(lambda: _applied(site) > start, 15, interval=0.002)
        _kill(terminal)  # SIGKILL while batches are being applied
        killed_at = _applied(site)
        terminal = _spawn(*args, str(broker.port))
        assert wait_for(lambda: _applied(site) == site.db.head_seq(), 30)
    finally:
        terminal.terminate()
        terminal.wait(10)
    assert killed_at < site.db.head_seq(), "all applied before the kill: the test proved nothing"
    with closing(sqlite3.connect(site.terminal.root / "terminal.db")) as conn:
        balance = conn.execute("SELECT balance FROM purses WHERE account = 'H2'").fetchone()
        assert balance == (40_000,)
        ledger = conn.execute("SELECT count(*) FROM ledger WHERE account = 'H2'").fetchone()[0]
        assert ledger in (4000, 0)  # every entry once (or a snapshot carrying the balance)


def _applied(site: Site) -> int:
    try:
        with closing(sqlite3.connect(site.terminal.root / "terminal.db", timeout=5)) as conn:
            row = conn.execute("SELECT value FROM sync_state WHERE key = 'change_seq'").fetchone()
    except sqlite3.Error:
        return -1
    return int(row[0]) if row else 0


def _raw_client(port: int) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="intruder")
    client.connect("127.0.0.1", port)
    return client


def test_forged_messages_over_the_wire_are_rejected(site: Site, broker: Broker) -> None:
    site.start_hq()
    site.terminal.start()
    assert site.synced()
    signer = site.db.signer()
    topics = site.terminal.service.engine.topics
    deny = {"seq": 10_000, "cards": [{"number": card_number(1), "status": "lost"}]}
    good = json.loads(signer.seal("deny", SITE, deny))
    unsigned = {k: v for k, v in good.items() if k != "sig"}
    wrong_sig = good | {"sig": good["sig"][:-4] + "AAA="}
    wrong_site = json.loads(signer.seal("deny", "another-site", deny))
    client = _raw_client(broker.port)
    for payload in (unsigned, wrong_sig, wrong_site):
        client.publish(topics.deny, json.dumps(payload), qos=1)
    client.publish(topics.deny, b"{" + b" " * (2 << 20) + b"}", qos=1)
    client.loop(1)
    engine = site.terminal.service.engine
    assert wait_for(lambda: sum(engine.rejected.values()) >= 4, 5), engine.rejected
    assert site.terminal.status(1) == "active"
    assert {"missing_sig", "bad_sig", "wrong_site", "oversize"} <= set(engine.rejected)
    client.disconnect()


def test_degraded_after_the_head_expires(tmp_path: Path, broker: Broker) -> None:
    site = Site(tmp_path, broker, head_ttl=2)
    try:
        site.start_hq()
        site.terminal.start()
        assert site.synced()
        assert wait_for(lambda: not site.terminal.service.degraded, 3)
        site.stop_hq()
        assert wait_for(lambda: site.terminal.service.degraded, 5)
    finally:
        site.close()


def test_mqtt_311_works_too(tmp_path: Path, broker: Broker) -> None:
    site = Site(tmp_path, broker, mqtt_version="3.1.1")
    site.terminal.stop()
    site.terminal = restarted(site.terminal, mqtt_version="3.1.1")
    try:
        site.start_hq()
        site.terminal.start()
        assert site.synced()
        site.office.set_status(card_number(1), "lost")
        assert wait_for(lambda: site.terminal.status(1) == "lost", 2)
    finally:
        site.close()


def test_commands_from_the_hq_tool_run_once_and_not_after_expiry(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    site.start_hq()
    site.terminal.start()
    assert site.synced()
    hq_dir = ["--dir", str(site.hq_root)]
    assert hq_main([*hq_dir, "cmd", TID, "status", "--wait", "5"]) == 0
    assert '"change_seq"' in capsys.readouterr().out
    assert hq_main([*hq_dir, "cmd", TID, "open", "--ttl", "-5", "--wait", "5"]) == 1
    assert '"expired"' in capsys.readouterr().out
    assert site.terminal.service.engine.rejected["expired"] == 1
    assert hq_main([*hq_dir, "status", "--wait", "1"]) == 0
    assert TID in capsys.readouterr().out


def test_back_within_seconds_of_a_broker_restart_with_the_default_backoff(
    site: Site, broker: Broker
) -> None:
    site.terminal.stop()
    site.terminal = restarted(site.terminal, reconnect_max=60.0)  # the shipped cap, not FAST's
    site.start_hq()
    site.terminal.start()
    assert site.synced()
    link = site.terminal.service.link
    broker.stop()
    assert wait_for(lambda: not link.connected.is_set(), 5)
    time.sleep(10)  # a slow broker restart: a run of reconnect attempts fails meanwhile
    site.terminal.commit_payments(20)
    broker.start()
    restarted_at = time.monotonic()
    assert wait_for(link.connected.is_set, 10)
    assert time.monotonic() - restarted_at < 6  # it used to wait up to the 60 s cap
    assert wait_for(lambda: site.terminal.port.outbox_stats().tx_backlog == 0, 10)
    assert [seq for seq, _ in site.hq_tx()] == list(range(1, 21))


def test_records_sent_before_hq_resubscribed_go_again_when_it_is_back(
    site: Site, broker: Broker
) -> None:
    site.terminal.stop()
    site.terminal = restarted(site.terminal, resend_after=60.0)  # far beyond this test's waits
    site.start_hq()
    site.terminal.start()
    assert site.synced()
    site.stop_hq()
    broker.stop()
    broker.start()  # no persistence: HQ's subscriptions are gone with the old broker
    link = site.terminal.service.link
    assert wait_for(link.connected.is_set, 10)
    site.terminal.commit_payments(30)  # published to nobody: the broker drops them
    assert wait_for(lambda: site.terminal.port.outbox_stats().tx_backlog == 30, 5)
    time.sleep(1.0)
    site.start_hq()  # subscribes, then announces itself with a fresh head
    assert wait_for(lambda: site.terminal.port.outbox_stats().tx_backlog == 0, 10)
    assert [seq for seq, _ in site.hq_tx()] == list(range(1, 31))
