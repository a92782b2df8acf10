"""Opening the database: pragmas, numbered migrations, and quarantine of a corrupt file."""

import contextlib
import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from models.errors import StoreError

logger = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """The numbered SQL files shipped with the package, in order, checked to be gap-free."""
    found = []
    for entry in resources.files("terminal.store").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise StoreError(f"migration files are not numbered 1..n: {migration.name}")
    return found


def latest_version() -> int:
    return len(migrations())


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, target: int | None = None) -> int:
    """Apply every migration above the database's version (up to ``target``), each atomically.

    Returns the resulting version. Refuses a database newer than this software.
    """
    available = migrations()
    target = len(available) if target is None else target
    current = schema_version(conn)
    if current > len(available):
        raise StoreError(
            f"database schema is version {current}, newer than this software knows "
            f"({len(available)}): refusing to touch it; install the newer software again"
        )
    for migration in available[current:target]:
        logger.info("applying migration %s", migration.name)
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{migration.sql}\nPRAGMA user_version = {migration.version};\n"
                "COMMIT;"
            )
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"migration {migration.name} failed: {exc}") from exc
    return schema_version(conn)


def _configure(conn: sqlite3.Connection, *, readonly: bool) -> None:
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA foreign_keys = ON")
    if not readonly:
        # WAL lets the diag CLI read while the daemon writes; FULL makes every commit durable
        # before the gate opens (a power cut must not lose an admitted passage).
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"cannot switch the database to WAL (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")


# What SQLite raises for a damaged file; re-exported so that diag (which may not import sqlite3)
# can tell a damaged database from a bug.
DatabaseError = sqlite3.DatabaseError
DAMAGE_SUFFIX = ".damaged"


def damage_marker(path: Path) -> Path:
    """Left by an integrity check that found the database damaged: the next start quarantines."""
    return path.with_name(path.name + DAMAGE_SUFFIX)


def quarantined_files(path: Path) -> list[str]:
    """The files an earlier start moved aside as unreadable, beside the database at ``path``."""
    return sorted(
        p.name
        for p in path.parent.glob(path.name + ".corrupt-*")
        if not p.name.endswith(("-wal", "-shm", ".salvaged"))
    )


def quarantine(path: Path, why: str) -> Path:
    """Move the database at ``path`` (and its WAL) aside, keeping it for the support desk."""
    return _quarantine(path, why)


def _quarantine(path: Path, why: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            part.rename(Path(str(target) + suffix))
    logger.error(
        "database %s is unusable (%s); moved aside to %s, starting empty for a resync",
        path,
        why,
        target,
    )
    return target


def connect(path: Path, *, readonly: bool = False, quarantine: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database at ``path``.

    A file that is not a readable SQLite database is moved aside (quarantined) and replaced by an
    empty one, which a resync from HQ then fills; the bad file is kept for the support desk.
    """
    if readonly:
        if not path.exists():
            raise StoreError(f"no database at {path}")
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        _configure(conn, readonly=True)
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size == 0:
        # SQLite would take it for a new database and the terminal would start as a new one
        # without a word; a file this software made is never empty, so it was truncated.
        if not quarantine:
            raise StoreError(f"database {path} is an empty file")
        _quarantine(path, "an empty file where the database was (truncated)")
    try:
        conn = _open_writable(path)
    except sqlite3.DatabaseError as exc:
        if not quarantine:
            raise StoreError(f"database {path} is unusable: {exc}") from exc
        _quarantine(path, str(exc))
        conn = _open_writable(path)
    return conn


def _owner_only(path: Path) -> None:
    """The database holds personal data: readable by its owner only, as under the unit's
    UMask=0077, whatever the umask of whoever runs it. SQLite gives the -wal and -shm files the
    main file's mode."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = file.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            logger.warning("%s was readable by others (mode %o): now 0600", file, mode)
            file.chmod(0o600)


def _open_writable(path: Path) -> sqlite3.Connection:
    _owner_only(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # Reading the schema forces SQLite to parse the header: garbage fails here, not mid-tap.
        conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        _configure(conn, readonly=False)
        migrate(conn)
    except sqlite3.DatabaseError:
        conn.close()
        raise
    return conn
