"""Records still readable in a quarantined database are read back for HQ, even when the
journal's interior page is gone; only records whose hash matches their content and that HQ had
not acknowledged are kept."""

from pathlib import Path

from models.canonical import record_hash
from terminal.store import Store
from terminal.store.salvage import pending, recover, salvage_quarantined
from terminal.store.schema import quarantined_files
from terminal.store.sync_port import StoreSyncPort
from tests.unit.test_store_damage import damaged_site, journal_root, overwrite

ACKED = 2800  # of 3000: HQ had all but the last 200 when the file was damaged


def quarantined_site(tmp_path: Path) -> tuple[Store, str]:
    path, old_epoch = damaged_site(tmp_path)
    store = Store.open(path)
    store.put_state("tx_acked", str(ACKED))
    store.close()
    root, _ = journal_root(path)
    overwrite(path, root, 8, 192)  # the journal's interior page: the b-tree cannot be walked
    return Store.open(path), old_epoch


def test_records_hq_never_had_are_read_back_from_a_quarantined_file(tmp_path: Path) -> None:
    store, old_epoch = quarantined_site(tmp_path)
    try:
        assert store.records() == [] and len(quarantined_files(store.path)) == 1
        [quarantined] = pending(store.path)
        salvage = recover(quarantined, store.epoch)
        assert salvage.error == ""
        assert salvage.acked == {old_epoch: ACKED}
        seqs = [r["seq"] for r in salvage.records]
        # Only the page overwritten is lost: every unacknowledged record is on a leaf.
        assert seqs == list(range(ACKED + 1, 3001))
        assert all(r["epoch"] == old_epoch and record_hash(r) == r["hash"] for r in salvage.records)
    finally:
        store.close()


def test_salvage_queues_them_once_and_hq_naming_them_drops_them(tmp_path: Path) -> None:
    store, old_epoch = quarantined_site(tmp_path)
    try:
        [done] = salvage_quarantined(store)
        assert len(done.records) == 200
        assert pending(store.path) == []  # marked: not read again at the next start
        assert store.add_salvaged(done.records) == 0  # keyed by (epoch, seq)
        port = StoreSyncPort(store, "t1")
        due = port.salvaged_due(500, "9999")
        assert [r["seq"] for r in due] == list(range(ACKED + 1, 3001))
        port.mark_salvaged_sent(due, "2026-11-23T12:00:00.000Z")
        assert port.salvaged_due(500, "2026-11-23T11:00:00.000Z") == []  # sent: not yet again
        assert port.drop_salvaged(old_epoch, [r["seq"] for r in due[:150]]) == 150
        assert len(port.salvaged_due(500, "9999")) == 50
    finally:
        store.close()


def test_garbled_records_are_never_taken_and_an_unknown_ack_sends_all(tmp_path: Path) -> None:
    path, old_epoch = damaged_site(tmp_path, records=50)
    data = bytearray(path.read_bytes())
    at = data.find(b'"seq":7,')
    data[at + 6 : at + 7] = b"8"  # record 7 now claims seq 8: its hash no longer matches
    schema = data.find(b"CREATE TABLE sync_state")
    data[schema : schema + 12] = b"\x00" * 12  # the state table (HQ's ack) unreadable
    path.write_bytes(bytes(data))
    salvage = recover(path, "a-newer-epoch")
    assert salvage.acked == {}
    assert [r["seq"] for r in salvage.records] == [s for s in range(1, 51) if s != 7]
    assert {r["epoch"] for r in salvage.records} == {old_epoch}
