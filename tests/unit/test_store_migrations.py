import sqlite3
from pathlib import Path

import pytest

from models.errors import StoreError
from terminal.store import Store
from terminal.store.schema import connect, latest_version, migrate, migrations, schema_version


def schema_of(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name"
    )
    return [tuple(row) for row in rows]


def fresh_schema(tmp_path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(tmp_path / "fresh.db", isolation_level=None)
    migrate(conn)
    schema = schema_of(conn)
    conn.close()
    return schema


def test_migrations_are_numbered_without_gaps() -> None:
    versions = [m.version for m in migrations()]
    assert versions == list(range(1, len(versions) + 1))
    assert latest_version() >= 3


def test_all_migrations_apply_to_an_empty_database(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    assert migrate(conn) == latest_version()
    tables = {row[1] for row in schema_of(conn) if row[0] == "table"}
    assert {"holders", "cards", "journal", "outbox", "sync_state", "purses", "ledger"} <= tables
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


@pytest.mark.parametrize("start", range(1, latest_version()))
def test_upgrade_from_every_earlier_version_keeps_data(tmp_path: Path, start: int) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=start)
    assert schema_version(conn) == start
    conn.execute("INSERT INTO holders (id, name, card_class) VALUES ('H1', '李娜', 'red')")
    conn.close()

    upgraded = connect(path)
    assert schema_version(upgraded) == latest_version()
    assert upgraded.execute("SELECT name FROM holders").fetchall() == [("李娜",)]
    assert schema_of(upgraded) == fresh_schema(tmp_path)
    upgraded.close()


def test_second_open_changes_nothing(tmp_path: Path) -> None:
    connect(tmp_path / "t.db").close()
    again = connect(tmp_path / "t.db")
    assert schema_version(again) == latest_version()
    again.close()


def test_durability_pragmas(tmp_path: Path) -> None:
    conn = connect(tmp_path / "t.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn.close()


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn)
    conn.execute(f"PRAGMA user_version = {latest_version() + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this software"):
        connect(path)
    assert path.exists()


def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    migrate(conn, target=1)
    conn.execute("CREATE TABLE journal (x)")  # makes migration 2 fail half-way
    with pytest.raises(StoreError, match="0002"):
        migrate(conn)
    assert schema_version(conn) == 1
    assert (
        conn.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'outbox'").fetchone()[0] == 0
    )
    conn.close()


def test_corrupt_file_is_quarantined_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "terminal.db"
    path.write_bytes(b"this is not a database, it is a power cut" * 100)
    store = Store.open(path)
    assert store.counts()["journal"] == 0
    store.close()
    kept = list(tmp_path.glob("terminal.db.corrupt-*"))
    assert len(kept) == 1
    assert kept[0].read_bytes().startswith(b"this is not a database")


def test_pending_total_follows_the_pending_debits(store: Store) -> None:
    def total() -> tuple[int, int]:
        with store.read() as conn:
            kept = conn.execute("SELECT amount FROM pending_total").fetchone()[0]
            summed = conn.execute(
                "SELECT coalesce(sum(amount), 0) FROM pending_debits WHERE purse != 'work_meals'"
            ).fetchone()[0]
        return kept, summed

    with store.write() as conn:
        conn.execute(
            "INSERT INTO journal (seq, id, kind, at, decision, reason, prev_hash, hash, record) "
            "VALUES (1, 't1', 'meal', 'x', 'allow', 'allowed', '', '', '{}')"
        )
        conn.executemany(
            "INSERT INTO pending_debits (tx_id, tx_seq, account, purse, amount, at) "
            "VALUES (?, 1, 'H1', ?, ?, 'x')",
            [("t1", "cash", 300), ("t1", "meal_subsidy", 200), ("t1", "work_meals", 1)],
        )
    assert total() == (500, 500)
    with store.write() as conn:
        conn.execute("UPDATE pending_debits SET amount = 250 WHERE purse = 'cash'")
        conn.execute("DELETE FROM pending_debits WHERE purse = 'meal_subsidy'")
    assert total() == (250, 250)
