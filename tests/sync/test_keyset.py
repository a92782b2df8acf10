"""Which HQ keys a terminal trusts: only the offline root key can change that.

Found by an audit: any trusted online key could re-bind an existing kid to a key of its own and
revoke the rest with a ``keys`` change, kids were not bound to keys, and keys never expired.
"""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from models.canonical import canonical_json
from sync.engine import SyncEngine
from sync.envelope import Rejected, Rejection, Signer, b64encode, public_key_b64
from sync.keys import key_id, load_or_create
from sync.keyset import EXPIRY_GRACE, open_keyset, sign_keyset
from sync.topics import Topics
from terminal.store.sync_port import StoreSyncPort
from tests.sync.conftest import Published
from tests.sync.messages import NOW, SITE, TID, batch, change, head, holder, hq_signer
from tests.sync.messages import settings as sync_settings

TOPICS = Topics("ykt/v1", SITE, TID)
ROOT = Ed25519PrivateKey.from_private_bytes(bytes([77]) * 32)
YEAR = timedelta(days=365)


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.mono = 1000.0


def make_engine(tmp_path: Path, port: StoreSyncPort, hq: Signer, clock: Clock) -> SyncEngine:
    conf = sync_settings(tmp_path, hq, hq_root_key=public_key_b64(ROOT.public_key()))
    key = load_or_create(conf.key_file)
    return SyncEngine(
        conf,
        port,
        Signer(key_id(key.public_key(), "t-"), key),
        clock=lambda: clock.now,
        monotonic=lambda: clock.mono,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(tmp_path: Path, port: StoreSyncPort, hq: Signer, clock: Clock) -> SyncEngine:
    return make_engine(tmp_path, port, hq, clock)


def keyset(
    version: int, *signers: Signer, root: Ed25519PrivateKey = ROOT, days: int = 365
) -> bytes:
    until = NOW + timedelta(days=days)
    return sign_keyset(root, SITE, version, [(s.public_key, until) for s in signers], issued=NOW)


def heads_accepted(engine: SyncEngine, signer: Signer, seq: int, published: Published) -> bool:
    before = engine.rejected.total()
    engine.handle(TOPICS.head, signer.seal("head", SITE, head(seq)), published)
    return engine.rejected.total() == before


def test_an_online_key_cannot_rebind_or_revoke_keys(
    engine: SyncEngine, hq: Signer, published: Published, port: StoreSyncPort
) -> None:
    attacker = hq_signer(9)
    forged = Signer(hq.kid, Ed25519PrivateKey.from_private_bytes(bytes([9]) * 32))
    keys = change(
        1,
        "keys",
        add=[{"kid": hq.kid, "pub": public_key_b64(attacker.public_key)}],
        revoke=[hq.kid],
    )
    engine.handle(TOPICS.changes, hq.seal("changes", SITE, batch([keys])), published)
    assert port.marks().change_seq == 1  # skipped, and the log goes on past it
    assert not heads_accepted(engine, forged, 1, published)
    assert not heads_accepted(engine, attacker, 2, published)
    assert heads_accepted(engine, hq, 3, published)


def test_a_keyset_from_the_root_key_replaces_the_configured_keys_for_good(
    tmp_path: Path,
    engine: SyncEngine,
    hq: Signer,
    published: Published,
    port: StoreSyncPort,
    clock: Clock,
) -> None:
    new = hq_signer(2)
    engine.on_connected(published)
    engine.handle(TOPICS.keys, keyset(1, new), published)
    assert engine.keyring.kids() == [new.kid]
    assert published.topics()[-1] == "resync"  # what the new key signed before may be missed
    assert heads_accepted(engine, new, 1, published)
    assert not heads_accepted(engine, hq, 2, published)  # the config still lists it
    again = make_engine(tmp_path, port, hq, clock)
    assert again.keyring.kids() == [new.kid]
    assert not heads_accepted(again, hq, 3, published)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (keyset(1, hq_signer(2), root=Ed25519PrivateKey.from_private_bytes(b"\1" * 32)), "kid"),
        (b"{}", "wrong_type"),
        (b"\xff", "not_json"),
    ],
)
def test_keysets_not_from_the_root_key_are_refused(
    engine: SyncEngine, hq: Signer, published: Published, payload: bytes, reason: str
) -> None:
    engine.handle(TOPICS.keys, payload, published)
    assert [r for r in engine.rejected if reason in r]
    assert engine.keyring.kids() == [hq.kid]


def test_an_older_keyset_is_stale_and_the_same_one_is_nothing_new(
    engine: SyncEngine, hq: Signer, published: Published
) -> None:
    two = hq_signer(2)
    engine.handle(TOPICS.keys, keyset(2, two), published)
    engine.handle(TOPICS.keys, keyset(2, two), published)
    assert engine.rejected.total() == 0
    engine.handle(TOPICS.keys, keyset(1, hq), published)
    assert engine.rejected[Rejection.STALE] == 1
    assert engine.keyring.kids() == [two.kid]


def test_a_key_past_its_end_of_validity_is_no_longer_trusted(
    engine: SyncEngine, hq: Signer, published: Published, clock: Clock
) -> None:
    engine.handle(TOPICS.keys, keyset(1, hq, days=30), published)
    clock.now = NOW + timedelta(days=30) + EXPIRY_GRACE
    assert heads_accepted(engine, hq, 1, published)
    clock.now += timedelta(seconds=1)
    assert not heads_accepted(engine, hq, 2, published)
    assert engine.rejected[Rejection.UNKNOWN_KID] == 1


def test_without_a_pinned_root_key_keysets_are_refused(
    tmp_path: Path, port: StoreSyncPort, hq: Signer, published: Published
) -> None:
    conf = sync_settings(tmp_path, hq)
    key = load_or_create(conf.key_file)
    engine = SyncEngine(conf, port, Signer(key_id(key.public_key(), "t-"), key))
    engine.handle(TOPICS.keys, keyset(1, hq_signer(2)), published)
    assert engine.rejected[Rejection.UNKNOWN_KID] == 1
    assert engine.keyring.kids() == [hq.kid]


def test_a_kid_that_is_not_its_keys_id_is_refused_even_signed_by_the_root() -> None:
    good = json.loads(keyset(1, hq_signer(2)))
    good["keys"][0]["kid"] = "hq-0000000000000000"
    del good["sig"]
    good["sig"] = b64encode(ROOT.sign(canonical_json(good)))
    with pytest.raises(Rejected, match="not the id of its key"):
        open_keyset(canonical_json(good), ROOT.public_key(), site=SITE)


VALID = keyset(3, hq_signer(2), hq_signer(3))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.integers(1, 255))
def test_any_changed_byte_is_refused_or_changes_nothing(where: int, flip: int) -> None:
    mutated = bytearray(VALID)
    mutated[where] ^= flip
    original = open_keyset(VALID, ROOT.public_key(), site=SITE)
    try:
        opened = open_keyset(bytes(mutated), ROOT.public_key(), site=SITE)
    except Rejected:
        return
    # Only a base64 character whose dropped low bits differ can decode to the same signature.
    assert (opened.version, [k.kid for k in opened.keys]) == (
        original.version,
        [k.kid for k in original.keys],
    )


def test_holder_changes_still_apply_next_to_a_skipped_keys_entry(
    engine: SyncEngine, hq: Signer, published: Published, port: StoreSyncPort
) -> None:
    entries = [
        change(1, "keys", add=[], revoke=[]),
        change(2, "holder.upsert", holder=holder("H1")),
    ]
    engine.handle(TOPICS.changes, hq.seal("changes", SITE, batch(entries)), published)
    assert port.marks().change_seq == 2
