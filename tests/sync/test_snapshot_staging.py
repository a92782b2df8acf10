"""Snapshot staging in many-row statements: order, repeats and bad rows as one row at a time."""

import pytest

from models.errors import StoreError
from sync.changes import parse_change
from sync.envelope import Rejected
from sync.port import PurseBalance
from sync.snapshot import SnapshotAssembler, build_chunks, chunk_bodies, parse_item
from terminal.store.keeping import Keeping
from terminal.store.sync_port import ROWS_PER_INSERT, StoreSyncPort
from tests.sync.messages import card, change, holder


def names(port: StoreSyncPort) -> dict[str, str]:
    with port.store.read() as conn:
        return dict(conn.execute("SELECT id, name FROM holders").fetchall())


def test_a_key_repeated_within_a_chunk_ends_as_its_last_line(port: StoreSyncPort) -> None:
    # Full names: the names are what tells the rows apart here.
    port = StoreSyncPort(port.store, port.tid, keeping=Keeping(full_names=True))
    count = 2 * ROWS_PER_INSERT + 5  # whole statements and a remainder
    items = [
        parse_change(change(i + 1, "holder.upsert", holder=holder(f"H{i}", name=f"n{i}")))
        for i in range(count)
    ]
    items.append(parse_change(change(count + 1, "holder.upsert", holder=holder("H3", name="x"))))
    items += [
        parse_change(change(count + 2 + i, "card.upsert", card=card(i, f"H{i}")))
        for i in range(count)
    ]
    items += [PurseBalance(f"H{i}", "cash", i, None) for i in range(count)]
    stage = port.begin_snapshot("s1", 1000)
    stage.add(items)
    stage.commit(seq=1000, snap_id="s1", tx_through=0)
    got = names(port)
    assert len(got) == count and got["H3"] == "x" and got["H70"] == "n70"
    with port.store.read() as conn:
        assert conn.execute("SELECT count(*), sum(balance) FROM purses").fetchone() == (
            count,
            sum(range(count)),
        )


def test_a_bad_row_in_a_many_row_statement_rejects_the_chunk(port: StoreSyncPort) -> None:
    stage = port.begin_snapshot("s1", 1000)
    purses = [PurseBalance(f"H{i}", "cash", i, None) for i in range(ROWS_PER_INSERT)]
    purses[10] = PurseBalance("H10", "no-such-purse", 1, None)
    with pytest.raises(StoreError, match="CHECK constraint failed"):
        stage.add(purses)
    stage.discard()
    assert port.marks().change_seq == 0


def test_chunks_hash_the_uncompressed_content_and_compress_as_they_go() -> None:
    lines = [f'{{"kind":"meta","tx_through":{i}}}'.encode() for i in range(2000)]
    chunks = build_chunks(lines, chunk_bytes=4096)
    bodies = list(chunk_bodies(chunks, snap_id="s", seq=1))
    assert len(bodies) == len(chunks.raw) > 1
    assert {b["sha256"] for b in bodies} == {chunks.sha256}
    assert b"".join(chunks.raw) == b"".join(line + b"\n" for line in lines)


def test_an_unknown_purse_in_a_snapshot_is_rejected_as_a_message() -> None:
    with pytest.raises(Rejected, match="unknown 'gold_coins'"):
        parse_item({"kind": "purse", "account": "H1", "purse": "gold_coins", "balance": 5})
    assert parse_item({"kind": "purse", "account": "H1", "purse": "cash", "balance": 5}) == (
        "item",
        PurseBalance("H1", "cash", 5, None),
    )


def test_a_chunk_the_store_cannot_stage_abandons_the_snapshot(
    port: StoreSyncPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [b'{"account":"H1","balance":5,"kind":"purse","purse":"cash"}']
    [body] = chunk_bodies(build_chunks(lines, chunk_bytes=4096), snap_id="s9", seq=50)
    begin = port.begin_snapshot

    def failing_stage(snap_id: str, seq: int):  # type: ignore[no-untyped-def]
        stage = begin(snap_id, seq)

        def disk_full(items: object) -> None:
            raise StoreError("cannot stage snapshot s9: database or disk is full")

        stage.add = disk_full
        return stage

    monkeypatch.setattr(port, "begin_snapshot", failing_stage)
    assembler = SnapshotAssembler(port)
    with pytest.raises(StoreError, match="disk is full"):
        assembler.offer(body, applied_seq=0)
    # Nothing half-built lingers: the next snapshot starts from scratch.
    assert assembler.in_progress is None
