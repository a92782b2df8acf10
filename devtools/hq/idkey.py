"""The key HQ hashes ID numbers (身份证号) with, kept outside the database.

An ID number is an area code (6 digits), a birth date (8) and a sequence with its check digit
(4). Whoever knows where someone registered and the last four digits (printed on many receipts)
has only the birth date left to guess: a few tens of thousands of candidates. A salted SHA-256
with the salt in the same database gave the ID back in well under a second from the database
file alone, and so did the holder id derived from it. Keyed with HMAC-SHA256 under a key that
is not in the database, neither the stored hash nor the holder id can be searched without the
key; HQ, which has it, still finds the same holder when the same sheet is imported again.

The key file is made at ``ykt hq init`` next to the site directory (``<dir>-id.key``, or
``--id-key`` / ``$YKT_HQ_ID_KEY``), mode 0600, so a copy of the site directory does not carry
it. Lose it and re-imported rows no longer match their holders: keep a copy where the root key
is kept.
"""

import hashlib
import hmac
import os
import secrets
import sqlite3
from pathlib import Path

from models.errors import SyncError

SCHEME = "hmac-sha256"  # meta ``id_hash``: how this site's people.id_hash was made
ENV = "YKT_HQ_ID_KEY"


def default_path(root: Path) -> Path:
    """Beside the site directory, not in it: the directory is what gets copied and backed up."""
    root = root.resolve()
    return root.parent / f"{root.name}-id.key"


def key_path(root: Path, configured: Path | None = None) -> Path:
    if configured is not None:
        return configured
    from_env = os.environ.get(ENV)
    return Path(from_env) if from_env else default_path(root)


def create_key(path: Path) -> None:
    """A new random key in a new 0600 file; refuses to overwrite (that would orphan every
    hash made with the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SyncError(f"{path} already exists: an ID key is never replaced") from None
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
        out.flush()
        os.fsync(out.fileno())


def read_key(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode & 0o777
        text = path.read_text().strip()
    except FileNotFoundError:
        raise SyncError(
            f"no ID-number key at {path} ('ykt hq init' makes it; --id-key or ${ENV} if it is "
            "elsewhere)"
        ) from None
    except OSError as exc:
        raise SyncError(f"cannot read the ID-number key {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise SyncError(f"ID-number key {path} is readable by others (mode {mode:o}); chmod 600")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SyncError(f"{path} is not an ID-number key (64 hex digits)") from None
    if len(key) != 32:
        raise SyncError(f"{path} is not an ID-number key (64 hex digits)")
    return key


def digest(key: bytes, id_number: str) -> str:
    """HMAC-SHA256 of the ID number (upper case, as the sheet's X may come either way)."""
    return hmac.new(key, id_number.upper().encode(), hashlib.sha256).hexdigest()


def check_scheme(conn: sqlite3.Connection, scheme: str | None) -> None:
    """Refuse to add keyed hashes to a site whose ID hashes are still salted SHA-256.

    Those cannot be re-keyed in place: the ID numbers are not kept, and holder ids (on every
    terminal, card and ledger entry) derive from the old hashes, so mixing schemes would give
    a re-imported holder a second id. A site with no ID hashes yet simply starts keyed.
    """
    if scheme == SCHEME:
        return
    hashed = conn.execute("SELECT count(*) FROM people WHERE id_hash IS NOT NULL").fetchone()[0]
    if hashed:
        raise SyncError(
            f"this site holds {hashed} ID-number hashes salted with a salt kept in its own "
            "database (reversible from the database alone) and its holder ids derive from "
            "them: they cannot be re-keyed in place. Import the sheet into a new site "
            "('ykt hq init'), which hashes with a key kept outside the database"
        )
