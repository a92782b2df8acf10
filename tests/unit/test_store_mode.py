"""The database holds personal data: owner-only whatever the umask of whoever creates it."""

import os
import stat
from pathlib import Path

from terminal.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_is_owner_only_under_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        store = Store.open(tmp_path / "terminal.db")
        store.close()
    finally:
        os.umask(old)
    for name in ("terminal.db", "terminal.db-wal", "terminal.db-shm"):
        if (tmp_path / name).exists():
            assert _mode(tmp_path / name) == 0o600, name
    assert _mode(tmp_path / "terminal.db") == 0o600


def test_an_existing_readable_database_is_tightened(tmp_path: Path) -> None:
    Store.open(tmp_path / "terminal.db").close()
    (tmp_path / "terminal.db").chmod(0o644)
    Store.open(tmp_path / "terminal.db").close()
    assert _mode(tmp_path / "terminal.db") == 0o600
