"""A database damaged inside (not only in its header) is found and quarantined, never a crash
loop: pages overwritten where the start reads them, pages elsewhere found by the integrity check,
a file truncated to nothing."""

import random
import sqlite3
from pathlib import Path

from models.journal import TransactionDraft
from models.reasons import Reason
from terminal.store import Store
from terminal.store.schema import damage_marker, quarantined_files
from tests.fixtures import seed

PAGE = 4096


def damaged_site(tmp_path: Path, records: int = 3000) -> tuple[Path, str]:
    """A terminal database with a journal several pages deep; returns its path and epoch."""
    path = tmp_path / "terminal.db"
    store = Store.open(path)
    seed(store)
    for i in range(records):
        store.commit(
            TransactionDraft(
                "door",
                "2026-11-23T09:00:00Z",
                i,
                "card",
                "deny",
                Reason.CARD_UNKNOWN,
                0,
                card=f"{i:020d}",
            )
        )
    epoch = store.epoch
    store.close()
    return path, epoch


def overwrite(path: Path, page: int, start: int, length: int) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(page)
    offset = (page - 1) * PAGE + start
    data[offset : offset + length] = bytes(rng.randrange(256) for _ in range(length))
    path.write_bytes(bytes(data))


def oldest_journal_leaf(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'journal' AND pagetype = 'leaf' "
            "ORDER BY path LIMIT 1"
        ).fetchone()
        return int(row[0])
    finally:
        conn.close()


def journal_root(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        root = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'journal'").fetchone()
        pages = conn.execute("PRAGMA page_count").fetchone()
        return int(root[0]), int(pages[0])
    finally:
        conn.close()


def test_damage_where_the_start_reads_is_quarantined_not_a_crash(tmp_path: Path) -> None:
    path, epoch = damaged_site(tmp_path)
    root, _ = journal_root(path)
    overwrite(path, root, 8, 192)  # the journal's interior page: the tip cannot be read
    store = Store.open(path)  # used to raise "database disk image is malformed" at every start
    try:
        assert store.records() == [] and store.epoch and store.epoch != epoch
        assert len(quarantined_files(path)) == 1
        assert store.check_integrity() == []
    finally:
        store.close()


def test_damage_elsewhere_is_found_by_the_check_and_quarantined_at_the_next_start(
    tmp_path: Path,
) -> None:
    path, epoch = damaged_site(tmp_path)
    # A leaf holding the oldest records: the start reads only the newest, then reads wrong.
    overwrite(path, oldest_journal_leaf(path), 100, 1400)
    store = Store.open(path)
    try:
        assert store.epoch == epoch  # nothing at start reads that page
        found = store.check_integrity()
        assert found and store.damaged
        assert damage_marker(path).exists()
    finally:
        store.close()
    again = Store.open(path)
    try:
        assert again.records() == [] and again.epoch != epoch
        assert len(quarantined_files(path)) == 1
        assert not damage_marker(path).exists()
    finally:
        again.close()


def test_a_database_truncated_to_nothing_is_not_taken_for_a_new_terminal(tmp_path: Path) -> None:
    path, epoch = damaged_site(tmp_path, records=10)
    path.write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = Store.open(path)
    try:
        assert quarantined_files(path) != []
        assert store.epoch != epoch
    finally:
        store.close()


def test_a_healthy_database_passes_the_check(tmp_path: Path) -> None:
    path, _ = damaged_site(tmp_path, records=0)
    store = Store.open(path)
    try:
        assert store.check_integrity() == [] and store.damaged is None
        assert not damage_marker(path).exists() and quarantined_files(path) == []
    finally:
        store.close()


def test_a_final_checkpoint_that_fails_loses_nothing_and_raises_nothing(tmp_path: Path) -> None:
    path, _ = damaged_site(tmp_path, records=20)
    store = Store.open(path)
    store.commit(
        TransactionDraft("door", "2026-11-23T09:01:00Z", 0, "card", "deny", Reason.CARD_UNKNOWN, 0)
    )

    class FullDisk:
        """The connection as a full disk leaves it: reads work, the checkpoint cannot write."""

        def __init__(self, conn: sqlite3.Connection) -> None:
            self._conn = conn

        def execute(self, sql: str, *args: object) -> object:
            if "wal_checkpoint" in sql:
                raise sqlite3.OperationalError("database or disk is full")
            return self._conn.execute(sql, *args)

        def close(self) -> None:
            self._conn.close()

    store._conn = FullDisk(store._conn)  # type: ignore[assignment]
    store.close()  # SIGTERM's path: it used to end the daemon with a traceback and exit 1
    again = Store.open(path)
    try:
        assert [r["seq"] for r in again.records()][-1] == 21
        assert again.verify_journal() is None
    finally:
        again.close()
