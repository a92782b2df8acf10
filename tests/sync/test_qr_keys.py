"""Holders' electronic-card keys as HQ's holder.upsert and snapshots leave them in the store: a
key HQ stops listing is revoked with that change, and a code is looked up by (holder, key id)."""

from sync.changes import parse_batch, parse_change
from sync.port import BatchOutcome
from terminal.store.sync_port import StoreSyncPort
from tests.sync.messages import batch, change, holder

KEY_1 = {"k": "q-1", "pub": "A" * 43 + "="}
KEY_2 = {"k": "q-2", "pub": "B" * 43 + "="}


def upsert(port: StoreSyncPort, seq: int, *keys: dict[str, str], hid: str = "H1") -> None:
    parsed = parse_batch(
        batch([change(seq, "holder.upsert", holder=holder(hid, qr_keys=list(keys)))])
    )
    assert port.apply_batch(parsed.first, parsed.last, parsed.changes) is BatchOutcome.APPLIED


def test_a_key_no_longer_listed_is_revoked_at_once(port: StoreSyncPort) -> None:
    upsert(port, 1, KEY_1, KEY_2)
    assert port.store.qr_keys("H1") == {"q-1": KEY_1["pub"], "q-2": KEY_2["pub"]}
    upsert(port, 2, KEY_2)  # the phone with q-1 was reported lost
    assert port.store.qr_keys("H1") == {"q-2": KEY_2["pub"]}
    upsert(port, 3)
    assert port.store.qr_keys("H1") == {}
    assert port.store.qr_keys("H-nobody") == {}


def test_a_deleted_holder_takes_the_keys_along(port: StoreSyncPort) -> None:
    upsert(port, 1, KEY_1)
    parsed = parse_batch(batch([change(2, "holder.delete", holder_id="H1")]))
    port.apply_batch(parsed.first, parsed.last, parsed.changes)
    assert port.store.qr_keys("H1") == {}


def test_a_snapshot_brings_the_keys_hq_lists_and_drops_the_rest(port: StoreSyncPort) -> None:
    upsert(port, 1, KEY_1)
    upsert(port, 2, KEY_1, hid="H2")
    stage = port.begin_snapshot("s1", 50)
    stage.add([parse_change(change(20, "holder.upsert", holder=holder("H1", qr_keys=[KEY_2])))])
    stage.commit(seq=50, snap_id="s1", tx_through=0)
    assert port.store.qr_keys("H1") == {"q-2": KEY_2["pub"]}
    assert port.store.qr_keys("H2") == {}  # not in the snapshot: gone, keys and all


def test_lookups_use_the_primary_keys(port: StoreSyncPort) -> None:
    with port.store.read() as conn:
        for sql, args in (
            ("SELECT qr_keys FROM holders WHERE id = ?", ("H1",)),
            ("SELECT 1 FROM qr_nonces WHERE holder_id = ? AND nonce = ?", ("H1", "n")),
        ):
            plan = " ".join(str(row[-1]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
            assert "USING PRIMARY KEY" in plan or "USING INDEX sqlite_autoindex" in plan, plan


def test_unreadable_keys_refuse_the_holders_codes_not_the_tap_path(port: StoreSyncPort) -> None:
    upsert(port, 1, KEY_1)
    with port.store.write() as conn:
        conn.execute("UPDATE holders SET qr_keys = 'not json' WHERE id = 'H1'")
    assert port.store.qr_keys("H1") == {}
