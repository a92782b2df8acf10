"""What diag reads: the database (read-only, on a connection of its own), the clock, the disk and
the terminal's key. Everything here works with the daemon running or stopped.

The database is opened read-only through :func:`terminal.store.schema.connect`, never through
the daemon's writer connection: a long ``integrity_check`` or journal scan then holds no lock the
tap path waits for (WAL lets a reader and the writer proceed side by side).
"""

import base64
import hashlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)

from models.cards import mask_card_number
from models.errors import StoreError
from models.journal import ChainBreak
from models.pin import mask_name
from terminal.diag.protocol import DiagError, ErrorCode, Level, worst
from terminal.diag.redact import mask_digits
from terminal.store import journal, schema

COUNTED = (
    "holders",
    "cards",
    "access_groups",
    "rules",
    "purses",
    "faces",
    "journal",
    "outbox",
    "events",
    "pending_debits",
    "sync_state",
)
# Journal fields a technician needs; mono_ns, hashes and the canonical JSON stay in the database.
_TX_FIELDS = ("seq", "id", "at", "kind", "decision", "reason", "door", "direction", "amount")
_TX_EXTRA = ("used", "ref", "view_seq", "corrects", "authorised_by")
_TOOL_TIMEOUT = 2.0
_TOOL_TTL = 10.0
_TOOL_CACHE: dict[tuple[str, ...], tuple[float, str | None]] = {}
_TOOL_LOCK = threading.Lock()


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def age_seconds(text: str | None, now: datetime) -> int | None:
    moment = parse_time(text)
    return None if moment is None else int((now - moment).total_seconds())


def mask_card(number: Any) -> str | None:
    return None if number is None else mask_card_number(str(number))


class Database:
    """A read-only view of the terminal's database for one diag request.

    With the daemon stopped, a read-only WAL reader still creates ``-wal``/``-shm`` files; when
    that reader is root, SQLite gives them the database file's owner, so the service user can
    open them at its next start.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._conn = schema.connect(path, readonly=True)
        except StoreError as exc:
            raise DiagError(ErrorCode.FAILED, str(exc)) from None
        except Exception as exc:  # sqlite3's errors, which only terminal.store may name
            raise DiagError(ErrorCode.FAILED, f"cannot open {path} read-only: {exc}") from None

    def __enter__(self) -> "Database":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._conn.close()
        if isinstance(error, schema.DatabaseError):
            # A damaged page met while reading: said as such, not a traceback.
            raise DiagError(ErrorCode.FAILED, f"database {self.path} is damaged: {error}") from None

    def _one(self, sql: str, *params: Any) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def tables(self) -> set[str]:
        rows = self._conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'").fetchall()
        return {str(name) for (name,) in rows}

    def counts(self) -> dict[str, int]:
        """Rows per table; a table too damaged to count is left out (``db check`` says why)."""
        present, found = self.tables(), {}
        for table in COUNTED:
            if table in present:
                try:
                    found[table] = int(self._one(f"SELECT count(*) FROM {table}"))
                except schema.DatabaseError:
                    continue
        return found

    def files(self) -> dict[str, Any]:
        sizes = {}
        for suffix in ("", "-wal"):
            part = Path(str(self.path) + suffix)
            sizes[suffix or "db"] = part.stat().st_size if part.exists() else 0
        return {
            "path": str(self.path),
            "size_bytes": sizes["db"],
            "wal_bytes": sizes["-wal"],
            "schema_version": schema.schema_version(self._conn),
            "schema_latest": schema.latest_version(),
            # Files an earlier start moved aside as unreadable (see docs/operations.md).
            "quarantined": schema.quarantined_files(self.path),
            # What the daemon's integrity check found; the next start quarantines the file.
            "damaged": _marker(self.path),
        }

    def sync_state(self) -> dict[str, str]:
        if "sync_state" not in self.tables():
            return {}
        rows = self._conn.execute("SELECT key, value FROM sync_state ORDER BY key").fetchall()
        return {str(k): str(v) for k, v in rows}

    def outbox(self, now: datetime) -> dict[str, Any]:
        rows = self._conn.execute("SELECT topic, count(*) FROM outbox GROUP BY topic").fetchall()
        counts = {str(topic): int(n) for topic, n in rows}
        oldest = self._one("SELECT min(queued_at) FROM outbox")
        return {
            "tx": counts.get("tx", 0),
            "event": counts.get("event", 0),
            "oldest_at": oldest,
            "oldest_age_s": age_seconds(oldest, now),
        }

    def journal_tip(self) -> tuple[int, str | None]:
        row = self._conn.execute("SELECT seq, at FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, None) if row is None else (int(row[0]), str(row[1]))

    def transactions(
        self,
        *,
        limit: int,
        card: str | None = None,
        reason: str | None = None,
        kind: str | None = None,
        decision: str | None = None,
        scan: int = 100_000,
    ) -> list[dict[str, Any]]:
        """The newest records matching every filter, newest first, card numbers masked.

        The journal has no secondary index (migration 0004 dropped them to keep taps fast), so a
        search reads at most the ``scan`` newest records instead of the whole journal.
        """
        last, _ = self.journal_tip()
        where: list[str] = ["seq > ?"]
        params: list[Any] = [last - scan]
        if card:
            # Four digits: what a technician reads off the card's face; more: the whole number.
            where.append("card LIKE ?" if len(card) <= 4 else "card = ?")
            params.append(f"%{card}" if len(card) <= 4 else card)
        for column, value in (("reason", reason), ("kind", kind), ("decision", decision)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT record FROM journal WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?"
        rows = self._conn.execute(sql, (*params, limit)).fetchall()
        return [tx_summary(json.loads(text)) for (text,) in rows]

    def events(self, *, limit: int, kind: str | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT e.id, e.type, e.at, e.tx_seq, e.card, e.door, e.detail, "
            "EXISTS (SELECT 1 FROM outbox o WHERE o.topic = 'event' AND o.ref = e.id) "
            "FROM events e"
        )
        params: list[Any] = []
        if kind:
            sql += " WHERE e.type = ?"
            params.append(kind)
        rows = self._conn.execute(sql + " ORDER BY e.id DESC LIMIT ?", (*params, limit))
        return [
            {
                "id": int(event_id),
                "type": str(kind_),
                "at": str(at),
                "tx_seq": tx_seq,
                "card": mask_card(card),
                "door": door,
                "detail": json.loads(mask_digits(str(detail))),
                "uploaded": not pending,
            }
            for event_id, kind_, at, tx_seq, card, door, detail, pending in rows.fetchall()
        ]

    def check(self) -> dict[str, Any]:
        """``db check``: integrity, schema version, foreign keys, the journal's hash chain."""
        integrity = [str(r[0]) for r in self._conn.execute("PRAGMA integrity_check(20)")]
        foreign = self._conn.execute("PRAGMA foreign_key_check").fetchall()
        version, latest = schema.schema_version(self._conn), schema.latest_version()
        names = [m.name for m in schema.migrations()]
        try:
            chain = journal.verify(self._conn)
            last, _ = self.journal_tip()
        except schema.DatabaseError as exc:
            chain, last = ChainBreak(0, f"unreadable: {exc}"), 0
        problems: list[str] = []
        levels: list[Level] = []
        if integrity != ["ok"]:
            problems.append("integrity_check: " + "; ".join(integrity[:3]))
            levels.append(Level.FAILED)
        if version > latest:
            problems.append(f"schema version {version} is newer than this software ({latest})")
            levels.append(Level.FAILED)
        elif version < latest:
            problems.append(f"schema version {version}: the daemon migrates to {latest} at start")
            levels.append(Level.DEGRADED)
        if foreign:
            problems.append(f"{len(foreign)} rows violate foreign keys")
            levels.append(Level.DEGRADED)
        if chain is not None:
            problems.append(f"journal chain broken at seq {chain.seq}: {chain.why}")
            levels.append(Level.FAILED)
        return {
            "level": worst(levels),
            "problems": problems,
            "integrity": integrity,
            "foreign_key_violations": len(foreign),
            "schema": {
                "version": version,
                "latest": latest,
                "applied": names[:version],
                "pending": names[version:],
            },
            "counts": self.counts(),
            "journal": {
                "records": last,
                "chain": "ok" if chain is None else f"broken at seq {chain.seq}: {chain.why}",
            },
        }

    def statistics(self, recent: int = 10_000) -> dict[str, Any]:
        """Aggregates for the support bundle: no row identifies a person."""
        last, _ = self.journal_tip()
        by_outcome = self._conn.execute(
            "SELECT kind, decision, reason, count(*) FROM journal WHERE seq > ? "
            "GROUP BY kind, decision, reason ORDER BY count(*) DESC",
            (last - recent,),
        ).fetchall()
        by_event = self._conn.execute(
            "SELECT type, count(*) FROM events GROUP BY type ORDER BY count(*) DESC"
        ).fetchall()
        pragmas = {
            name: self._one(f"PRAGMA {name}")
            for name in ("page_size", "page_count", "freelist_count", "journal_mode")
        }
        return {
            "files": self.files(),
            "pragmas": pragmas,
            "counts": self.counts(),
            "recent_journal": {
                "records": min(recent, last),
                "by_outcome": [
                    {"kind": k, "decision": d, "reason": r, "count": int(n)}
                    for k, d, r, n in by_outcome
                ],
            },
            "events_by_type": {str(t): int(n) for t, n in by_event},
        }

    def known_names(self, candidates: Iterable[str]) -> set[str]:
        """Which of ``candidates`` are holders' names (one scan of the holders table).

        The store keeps names as the display shows them unless the site keeps full names
        (docs/privacy.md), so a candidate whose masked form is a stored masked name counts too:
        a word too many masked in a bundle, rather than a name left in it."""
        wanted = sorted(set(candidates))
        if not wanted or "holders" not in self.tables():
            return set()
        masked = {c: mask_name(c) for c in wanted}
        rows = self._conn.execute(
            "SELECT DISTINCT name FROM holders WHERE name IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted({*wanted, *masked.values()}), ensure_ascii=False),),
        ).fetchall()
        stored = {str(name) for (name,) in rows}
        return {c for c in wanted if c in stored or (masked[c] != c and masked[c] in stored)}


def _marker(path: Path) -> str | None:
    marker = schema.damage_marker(path)
    try:
        return (
            marker.read_text(encoding="utf-8", errors="replace")[:500] if marker.exists() else None
        )
    except OSError:
        return None


def tx_summary(record: dict[str, Any]) -> dict[str, Any]:
    """A journal record as diag shows it: the card masked, no hashes, no timing internals."""
    summary = {name: record.get(name) for name in _TX_FIELDS}
    summary["card"] = mask_card(record.get("card"))
    summary["holder_id"] = record.get("holder_id")
    summary["split"] = record.get("split") or []
    summary.update({name: record[name] for name in _TX_EXTRA if name in record})
    return summary


def sync_facts(
    state: dict[str, str], outbox: dict[str, Any], last_seq: int, now: datetime
) -> dict[str, Any]:
    """``sync_state`` as people read it: positions, the head's age, what HQ has not acked."""
    acked = int(state.get("tx_acked", 0) or 0)
    expires = parse_time(state.get("head_expires"))
    return {
        "change_seq": int(state.get("change_seq", 0) or 0),
        "head_seq": int(state["head_seq"]) if state.get("head_seq") else None,
        "head_issued": state.get("head_issued"),
        "head_age_s": age_seconds(state.get("head_issued"), now),
        "head_expires": state.get("head_expires"),
        "head_expired": None if expires is None else now >= expires,
        "snapshot_id": state.get("snapshot_id"),
        "tx_acked": acked,
        "journal_last_seq": last_seq,
        "tx_unacked": max(0, last_seq - acked),
        "outbox": outbox,
        "state": state,
    }


def _run_tool(*argv: str) -> str | None:
    """A system tool's output, cached briefly: ``watch`` asks every second, in the daemon."""
    now = time.monotonic()
    with _TOOL_LOCK:
        cached = _TOOL_CACHE.get(argv)
        if cached is not None and now - cached[0] < _TOOL_TTL:
            return cached[1]
    try:
        done = subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=_TOOL_TIMEOUT
        )
        output = done.stdout if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        output = None
    with _TOOL_LOCK:
        _TOOL_CACHE[argv] = (now, output)
    return output


def clock_facts(timezone: str, now: datetime | None = None) -> dict[str, Any]:
    """Wall time, the site's zone, and what the OS knows of time sync (``unknown`` if nothing)."""
    now = now or datetime.now(UTC)
    facts: dict[str, Any] = {
        "utc": now.isoformat(timespec="seconds"),
        "local": now.astimezone(ZoneInfo(timezone)).isoformat(timespec="seconds"),
        "timezone": timezone,
        "ntp_synchronized": None,
        "source": "unknown",
        "offset_s": None,
    }
    shown = _run_tool("timedatectl", "show")
    if shown:
        values = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
        if "NTPSynchronized" in values:
            facts["ntp_synchronized"] = values["NTPSynchronized"] == "yes"
            facts["source"] = "timedatectl"
        facts["system_timezone"] = values.get("Timezone")
    tracking = _run_tool("chronyc", "-c", "tracking")
    if tracking:
        fields = tracking.strip().split(",")
        try:
            facts["offset_s"] = float(fields[4])
            facts["source"] = "chrony"
        except (IndexError, ValueError):
            pass
    return facts


DISK_LOW_PCT, DISK_LOW_BYTES, DISK_FULL_BYTES = 5.0, 200_000_000, 20_000_000


def disk_state(facts: dict[str, Any]) -> str:
    """One word and a figure for the status HQ sees: ok, low or full."""
    free = facts.get("free_bytes")
    if free is None:
        return "unknown"
    if free < DISK_FULL_BYTES:
        return f"full: {free // 1_000_000} MB free"
    if free < DISK_LOW_BYTES or (facts.get("free_pct") or 100) < DISK_LOW_PCT:
        return f"low: {free // 1_000_000} MB free"
    return "ok"


def clock_state(facts: dict[str, Any], behind_journal: bool) -> str:
    """The clock source for the status: ntp, unsynchronised or unknown, and a clock set back."""
    if behind_journal:
        return "behind the journal (set back?)"
    synced = facts.get("ntp_synchronized")
    if synced is None:
        return "unknown" if facts.get("source") == "unknown" else str(facts.get("source"))
    return "ntp" if synced else "not synchronised"


def disk_facts(path: Path) -> dict[str, Any]:
    target = path if path.exists() else path.parent
    try:
        usage = shutil.disk_usage(target)
    except OSError as exc:
        return {"path": str(path), "error": exc.strerror}
    return {
        "path": str(path),
        "free_bytes": usage.free,
        "total_bytes": usage.total,
        "free_pct": round(100 * usage.free / usage.total, 1) if usage.total else None,
    }


def identity(terminal_id: str, site: str, path: Path) -> dict[str, Any]:
    """The terminal's id and, once sync has created it at ``path``, the public half of its
    signing key."""
    result: dict[str, Any] = {
        "terminal_id": terminal_id,
        "site": site,
        "key_file": str(path),
        "public_key": None,
        "key_id": None,
    }
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        result["level"] = Level.NOT_AVAILABLE
        result["note"] = "no terminal key yet: the HQ link creates it on its first start"
        return result
    except OSError as exc:
        result["level"] = Level.FAILED
        result["note"] = f"cannot read the key ({exc.strerror}): ask through the daemon or as root"
        return result
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        result["level"] = Level.FAILED
        result["note"] = "the key file is not an Ed25519 PEM private key"
        return result
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    result["public_key"] = base64.b64encode(raw).decode("ascii")
    # The same id the HQ link announces itself with (sync.keys.key_id with prefix "t-").
    result["key_id"] = "t-" + hashlib.sha256(raw).hexdigest()[:16]
    result["level"] = Level.OK
    if mode & 0o077:
        result["level"] = Level.DEGRADED
        result["note"] = f"the key file is readable by others (mode {mode:o}): chmod 600 it"
    return result
