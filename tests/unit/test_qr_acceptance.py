"""Acceptance: codes made from the format's description alone are taken by the terminal.

The maker below is written from CARD.md's "Electronic card (QR), v1" with nothing but
``cryptography``, ``json`` and ``base64`` (no project code), as another team's phone app would
be. The keys reach the terminal as HQ sends them (a holder.upsert through the sync port), the
codes through the tap loop's QR reader, and the outcome is read from the journal.
"""

import base64
import json
import os
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from drivers.qr.sim import SimQrReader
from sync.changes import parse_batch
from terminal.clock import SetClock
from terminal.flows.door import DoorSettings
from terminal.loop import TapLoop
from terminal.store import Store
from terminal.store.sync_port import StoreSyncPort
from tests.factories import at
from tests.loops import door_loop, settle
from tests.sync.messages import batch, change, group, holder

MONDAY_9 = at(2026, 11, 23, "09:00")


def b64url_nopad(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def phone_code(key: Ed25519PrivateKey, h: str, k: str, iat: int, exp: int) -> str:
    """CARD.md: YKT1.<P>.<S>, P = unpadded base64url of the canonical JSON payload (sorted
    keys, no spaces, UTF-8), n = base64url of 12 random bytes, S = unpadded base64url of the
    Ed25519 signature over the ASCII bytes "YKT1." + P."""
    payload = {"h": h, "k": k, "iat": iat, "exp": exp, "n": b64url_nopad(os.urandom(12))}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    p = b64url_nopad(text.encode("utf-8"))
    s = b64url_nopad(key.sign(("YKT1." + p).encode("ascii")))
    return f"YKT1.{p}.{s}"


def raw_pub(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


class Terminal:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.port = StoreSyncPort(store, "gate-01")
        self.seq = 0
        self.clock = SetClock(MONDAY_9)
        self.qr = SimQrReader()
        self.loop: TapLoop = door_loop(store, DoorSettings("east-gate", "in", 0.05), self.clock)
        self.loop.qr_reader = self.qr

    def hq_sends(self, kind: str, **body: object) -> None:
        self.seq += 1
        parsed = parse_batch(batch([change(self.seq, kind, **body)]))
        self.port.apply_batch(parsed.first, parsed.last, parsed.changes)

    def show(self, text: str) -> tuple[str, str, str]:
        self.qr.show(text)
        self.qr.hide()
        settle(self.loop, self.clock)
        record = [r for r in self.store.records() if r["kind"] == "door"][-1]
        return str(record["decision"]), str(record["reason"]), str(record["credential"])


@pytest.fixture
def terminal(store: Store) -> Terminal:
    return Terminal(store)


def test_codes_of_an_independent_maker_pass_and_every_tampered_one_is_refused(
    terminal: Terminal,
) -> None:
    phone = Ed25519PrivateKey.generate()
    terminal.hq_sends("group.upsert", group=group())
    keys = [{"k": "phone-1", "pub": raw_pub(phone)}]
    terminal.hq_sends("holder.upsert", holder=holder("H1", qr_keys=keys))
    now = int(MONDAY_9.timestamp())

    good = phone_code(phone, "H1", "phone-1", now - 1, now + 29)
    assert terminal.show(good) == ("allow", "allowed", "qr")
    assert terminal.show(good) == ("deny", "qr_replayed", "qr")

    fresh = phone_code(phone, "H1", "phone-1", now, now + 30)
    prefix, p, s = fresh.split(".")
    other = Ed25519PrivateKey.generate()
    forged = phone_code(other, "H1", "phone-1", now, now + 30)
    tampered = {
        "bad signature": f"{prefix}.{p}.{forged.split('.')[2]}",
        "padding": f"{prefix}.{p}.{s}==",
        "other prefix": f"YKT2.{p}.{s}",
    }
    for what, text in tampered.items():
        assert terminal.show(text) == ("deny", "qr_invalid", "qr"), what
    assert terminal.show(phone_code(phone, "H1", "phone-1", now - 90, now - 30)) == (
        "deny",
        "qr_expired",
        "qr",
    )
    assert terminal.show(fresh) == ("allow", "allowed", "qr")  # the untampered one still passes

    terminal.hq_sends("holder.upsert", holder=holder("H1", qr_keys=[]))  # the phone was lost
    terminal.clock.advance(timedelta(seconds=1))
    revoked = phone_code(phone, "H1", "phone-1", now + 1, now + 31)
    assert terminal.show(revoked) == ("deny", "qr_unknown_key", "qr")
    assert terminal.store.verify_journal() is None
