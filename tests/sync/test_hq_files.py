"""The HQ site directory is its owner's alone: the database holds the site's people and money,
the key files HQ's signing keys."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.hq.cli import main
from devtools.hq.db import DB_NAME, HqDb
from devtools.hq.office import Office
from tests.sync.messages import SITE


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    # The modes must not depend on the umask of whoever runs ``ykt hq``.
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_init_makes_the_directory_0700_and_every_file_in_it_0600(
    tmp_path: Path, open_umask: None
) -> None:
    root = tmp_path / "sites" / "hq"
    assert main(["--dir", str(root), "init", "--site", SITE]) == 0
    db = HqDb(root)
    Office(db).move_money("H1", "cash", 100, "topup")  # the WAL and SHM files exist now
    assert (root / f"{DB_NAME}-wal").exists() and (root / f"{DB_NAME}-shm").exists()
    assert mode(root) == 0o700
    files = sorted(p.name for p in root.iterdir())
    assert {name: mode(root / name) for name in files} == {name: 0o600 for name in files}
    db.close()


def test_an_existing_directory_is_made_0700(tmp_path: Path, open_umask: None) -> None:
    root = tmp_path / "hq"
    root.mkdir(mode=0o755)
    HqDb.create(root, SITE, "ykt/v1", "127.0.0.1:1883").close()
    assert mode(root) == 0o700 and mode(root / DB_NAME) == 0o600


def test_a_database_left_readable_by_others_is_made_0600_when_opened(tmp_path: Path) -> None:
    root = tmp_path / "hq"
    HqDb.create(root, SITE, "ykt/v1", "127.0.0.1:1883").close()
    (root / DB_NAME).chmod(0o644)
    HqDb(root).close()
    assert mode(root / DB_NAME) == 0o600
