"""The reference HQ's database: the site's change log, current state, ledger and received tx.

One file per site, WAL, ``synchronous=FULL``. The change log is the single sequence PROTOCOL.md
asks for; ``state`` keeps the newest entry per object (what a snapshot sends). Every operation is
one IMMEDIATE transaction, so the change, the state and the ledger never disagree.
"""

import json
import logging
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devtools.hq import idkey
from models.canonical import canonical_json
from models.errors import SyncError
from models.timefmt import utc_now
from sync.envelope import Signer
from sync.keys import key_id, read_private_key, write_private_key

logger = logging.getLogger(__name__)

DB_NAME = "hq.db"
KEY_NAME = "hq-signing.key"

# Snapshot order: parents before children, so a staged card always finds its holder.
STATE_ORDER = ("group", "holiday", "rule", "holder", "card", "face")
# models.canonical's format (keys sorted, no spaces, UTF-8), for values known to hold no floats.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, entry TEXT NOT NULL, at TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS changes_by_kind ON changes (kind, seq);
CREATE TABLE IF NOT EXISTS state (
    kind TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL, line TEXT NOT NULL,
    PRIMARY KEY (kind, key)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS people (
    holder_id TEXT PRIMARY KEY, gender TEXT, title TEXT, building TEXT, id_hash TEXT,
    id_last4 TEXT, phone_masked TEXT, office_phone TEXT, note TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS cards (
    number TEXT PRIMARY KEY, holder_id TEXT NOT NULL, issue_seq INTEGER NOT NULL,
    status TEXT NOT NULL, card_class TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS cards_by_holder ON cards (holder_id, issue_seq);
CREATE TABLE IF NOT EXISTS purses (
    account TEXT NOT NULL, purse TEXT NOT NULL, balance INTEGER NOT NULL,
    PRIMARY KEY (account, purse)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger (
    id TEXT PRIMARY KEY, account TEXT NOT NULL, purse TEXT NOT NULL, delta INTEGER NOT NULL,
    balance_after INTEGER NOT NULL, reason TEXT NOT NULL, origin_tid TEXT,
    origin_tx_seq INTEGER, origin_tx_id TEXT, at TEXT NOT NULL, seq INTEGER NOT NULL
) STRICT;
-- Never post one purse part of one terminal transaction twice, whatever happens upstream. By the
-- transaction's id (a UUIDv7): seqs start again in a terminal's new journal epoch.
CREATE UNIQUE INDEX IF NOT EXISTS ledger_by_origin_tx ON ledger (origin_tid, origin_tx_id, purse)
    WHERE origin_tid IS NOT NULL;
-- ``epoch``: the terminal's current journal; ``acked_through`` and ``last_hash`` are within it.
CREATE TABLE IF NOT EXISTS terminals (
    tid TEXT PRIMARY KEY, pub TEXT NOT NULL, kid TEXT NOT NULL,
    acked_through INTEGER NOT NULL DEFAULT 0, last_hash TEXT, chain_break INTEGER,
    epoch TEXT NOT NULL DEFAULT ''
) STRICT;
-- Every transaction record ever received, deduplicated forever by (terminal, epoch, seq).
CREATE TABLE IF NOT EXISTS tx (
    tid TEXT NOT NULL, epoch TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL, id TEXT NOT NULL,
    record TEXT NOT NULL, received_at TEXT NOT NULL, PRIMARY KEY (tid, epoch, seq)
) STRICT, WITHOUT ROWID;
-- What HQ noticed about a terminal that an operator must look at (a journal that started
-- again, a seq that went backwards, a record resent with other content).
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY, tid TEXT NOT NULL, kind TEXT NOT NULL, detail TEXT NOT NULL,
    at TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS events (
    tid TEXT NOT NULL, event_id INTEGER NOT NULL, body TEXT NOT NULL, received_at TEXT NOT NULL,
    PRIMARY KEY (tid, event_id)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS statuses (tid TEXT PRIMARY KEY, body TEXT NOT NULL, at TEXT NOT NULL)
    STRICT;
CREATE TABLE IF NOT EXISTS replies (
    cmd_id TEXT PRIMARY KEY, tid TEXT NOT NULL, body TEXT NOT NULL, at TEXT NOT NULL
) STRICT;
"""

# After the upgrade, which rebuilds ``tx``. A correction is checked against the record it
# corrects and the other corrections of that record, so both are looked up by index.
INDEXES = """
CREATE INDEX IF NOT EXISTS tx_by_id ON tx (tid, id);
CREATE INDEX IF NOT EXISTS tx_by_corrects ON tx (tid, json_extract(record, '$.corrects'))
    WHERE json_extract(record, '$.corrects') IS NOT NULL;
"""


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring a database made before journal epochs to the schema above (once, atomically)."""
    if "epoch" in _columns(conn, "tx") and "epoch" in _columns(conn, "terminals"):
        conn.execute("DROP INDEX IF EXISTS ledger_by_origin")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "epoch" not in _columns(conn, "terminals"):
            conn.execute("ALTER TABLE terminals ADD COLUMN epoch TEXT NOT NULL DEFAULT ''")
        if "epoch" not in _columns(conn, "tx"):
            conn.execute("ALTER TABLE tx RENAME TO tx_before_epochs")
            conn.execute(
                "CREATE TABLE tx (tid TEXT NOT NULL, epoch TEXT NOT NULL DEFAULT '', "
                "seq INTEGER NOT NULL, id TEXT NOT NULL, record TEXT NOT NULL, "
                "received_at TEXT NOT NULL, PRIMARY KEY (tid, epoch, seq)) STRICT, WITHOUT ROWID"
            )
            conn.execute(
                "INSERT INTO tx (tid, epoch, seq, id, record, received_at) "
                "SELECT tid, '', seq, id, record, received_at FROM tx_before_epochs"
            )
            conn.execute("DROP TABLE tx_before_epochs")
        conn.execute("DROP INDEX IF EXISTS ledger_by_origin")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _owner_only(root: Path) -> None:
    """Take group and world access off the database files, for a site made before they were
    created owner-only (a copy of them is a copy of the site's people and money)."""
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm"):
        path = root / name
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            logger.warning("%s was mode %o; made 0600", path, mode)
            path.chmod(mode & 0o700)


def now_iso() -> str:
    return utc_now()


def text_of(value: Mapping[str, Any]) -> str:
    return canonical_json(value).decode()


class HqDb:
    """The HQ database of one site, in directory ``root``."""

    def __init__(self, root: Path, *, id_key: Path | None = None) -> None:
        self.root = root
        self.id_key_path = idkey.key_path(root, id_key)
        self._id_key: bytes | None = None
        path = root / DB_NAME
        if not path.exists():
            raise SyncError(f"no HQ database in {root}: run 'ykt hq init' first")
        # The file holds the site's people, balances and ledger. SQLite gives -wal and -shm the
        # main file's mode, but a umask covers a file it creates before that is settled.
        previous = os.umask(0o077)
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA busy_timeout = 10000")
            self.conn.execute("PRAGMA journal_mode = WAL")
        finally:
            os.umask(previous)
        _owner_only(root)
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.executescript(SCHEMA)
        _upgrade(self.conn)
        self.conn.executescript(INDEXES)
        # Kept by earlier versions, read by nothing (docs/privacy.md).
        self.conn.execute("UPDATE people SET id_last4 = NULL WHERE id_last4 IS NOT NULL")
        self.site = self.meta("site") or ""
        self.prefix = self.meta("prefix") or "ykt/v1"

    @classmethod
    def create(
        cls, root: Path, site: str, prefix: str, broker: str, *, id_key: Path | None = None
    ) -> "HqDb":
        """A new site: directory (0700), database and signing key (0600), and the key ID
        numbers are hashed with (0600, outside the directory: ``devtools.hq.idkey``)."""
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (root / DB_NAME).exists():
            raise SyncError(f"{root} already holds an HQ database")
        root.chmod(0o700)  # an existing directory too: it is the site's, keys and all
        idkey.create_key(idkey.key_path(root, id_key))
        write_private_key(root / KEY_NAME, Ed25519PrivateKey.generate())
        os.close(os.open(root / DB_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        db = cls(root, id_key=id_key)
        with db.tx() as conn:
            for key, value in (
                ("site", site),
                ("prefix", prefix),
                ("broker", broker),
                ("id_hash", idkey.SCHEME),
                ("published_seq", "0"),
            ):
                conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        db.site, db.prefix = site, prefix
        return db

    def close(self) -> None:
        self.conn.close()

    def id_key(self) -> bytes:
        """The ID-number key; raises, saying why, when it is missing or the site's hashes are
        of the old, salted kind (``devtools.hq.idkey``)."""
        if self._id_key is None:
            scheme = self.meta("id_hash")
            idkey.check_scheme(self.conn, scheme)
            self._id_key = idkey.read_key(self.id_key_path)
            if scheme != idkey.SCHEME:
                with self.tx() as conn:
                    self.set_meta(conn, "id_hash", idkey.SCHEME)
        return self._id_key

    def id_digest(self, id_number: str) -> str:
        """The keyed hash an ID number is stored and matched as; the holder id derives from it."""
        return idkey.digest(self.id_key(), id_number)

    def signer(self) -> Signer:
        key = read_private_key(self.root / KEY_NAME)
        return Signer(key_id(key.public_key(), "hq-"), key)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- the change log ---------------------------------------------------------------------

    def head_seq(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0])

    def append(
        self,
        conn: sqlite3.Connection,
        kind: str,
        body: Mapping[str, Any],
        *,
        state: tuple[str, str] | None = None,
    ) -> int:
        """Add one change (inside the caller's transaction); ``state`` = (kind, key) to keep."""
        seq = int(conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM changes").fetchone()[0])
        entry = text_of({"seq": seq, "kind": kind, **body})
        conn.execute(
            "INSERT INTO changes (seq, kind, entry, at) VALUES (?, ?, ?, ?)",
            (seq, kind, entry, now_iso()),
        )
        if state is not None:
            conn.execute(
                "INSERT INTO state (kind, key, seq, line) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET seq = excluded.seq, line = excluded.line",
                (state[0], state[1], seq, entry),
            )
        return seq

    def forget(self, conn: sqlite3.Connection, kind: str, key: str) -> None:
        conn.execute("DELETE FROM state WHERE kind = ? AND key = ?", (kind, key))

    def changes_after(
        self, after: int, limit: int, *, kind: str | None = None
    ) -> list[dict[str, Any]]:
        if kind is None:
            rows = self.conn.execute(
                "SELECT entry FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT entry FROM changes WHERE kind = ? AND seq > ? ORDER BY seq LIMIT ?",
                (kind, after, limit),
            ).fetchall()
        return [json.loads(text) for (text,) in rows]

    def snapshot_lines(self, tid: str) -> tuple[int, list[bytes]]:
        """The whole state as JSON lines, read in one transaction, and the seq it is at."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            seq = self.head_seq()
            row = conn.execute("SELECT acked_through FROM terminals WHERE tid = ?", (tid,))
            acked = row.fetchone()
            meta = {"kind": "meta", "seq": seq, "tx_through": int(acked[0]) if acked else 0}
            lines = [canonical_json(meta)]
            for kind in STATE_ORDER:
                # As the UTF-8 bytes stored, not decoded to str and encoded back.
                lines.extend(
                    line
                    for (line,) in conn.execute(
                        "SELECT CAST(line AS BLOB) FROM state WHERE kind = ? ORDER BY key", (kind,)
                    )
                )
            # One purse line per account: canonical JSON, formatted by the encoder directly
            # (canonical_json's float check walks each value, a third of a 100,000-holder
            # snapshot's build; balances come from a STRICT INTEGER column).
            encode = _CANONICAL.encode
            for account, purse, balance in conn.execute(
                "SELECT account, purse, balance FROM purses ORDER BY account, purse"
            ):
                line = {"kind": "purse", "account": account, "purse": purse, "balance": balance}
                lines.append(encode(line).encode())
        finally:
            conn.execute("COMMIT")
        return seq, lines
