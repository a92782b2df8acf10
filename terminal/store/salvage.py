"""Records read back out of a quarantined database, so what HQ never had is sent after all.

A damaged file is moved aside and the terminal starts a new journal (a new epoch). The old file
may still hold records that never reached HQ: payments already charged. Each journal row keeps
the whole record as canonical JSON, and a record carries the hash of its own content, so the
records are carved from the file's raw bytes (and its WAL's), whatever the b-tree above them
looks like: a damaged interior page hides no leaf. Only text that decodes to a record whose
hash matches is kept, so nothing garbled is ever sent. What HQ had acknowledged (``tx_acked``,
if the state table is still readable) is left out.

SQLite's own ``.recover`` would be the first choice, but the shell of Debian 12 (3.40) fails on
STRICT tables, which the terminal's schema uses throughout.
"""

import json
import logging
import mmap
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.canonical import record_hash
from models.errors import StoreError

if TYPE_CHECKING:
    from terminal.store.store import Store

logger = logging.getLogger(__name__)

DONE_SUFFIX = ".salvaged"
# Canonical JSON sorts keys: a record opens with "amount" (a payment) or "at" (anything else).
_RECORD_START = re.compile(rb'\{"(?:amount|at)":')
_LONGEST_RECORD = 64 * 1024


@dataclass(frozen=True, slots=True)
class Salvage:
    source: str
    records: tuple[dict[str, Any], ...]  # in (epoch, seq) order
    acked: dict[str, int]  # what HQ had acknowledged, by epoch, as far as it could be read
    error: str = ""

    def describe(self) -> str:
        if self.error:
            return f"{self.source}: nothing salvaged ({self.error})"
        seqs = [int(r["seq"]) for r in self.records]
        span = f" (seq {min(seqs)}-{max(seqs)})" if seqs else ""
        return f"{self.source}: {len(seqs)} records HQ may not have{span}"


def recover(quarantined: Path, live_epoch: str) -> Salvage:
    """What can be read of ``quarantined``'s journal that HQ did not acknowledge."""
    try:
        acked = _acked(quarantined)
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for part in (quarantined, Path(str(quarantined) + "-wal")):
            if not part.exists() or part.stat().st_size == 0:
                continue
            for record in _carve(part):
                epoch, seq = str(record.get("epoch", "")), int(record["seq"])
                if epoch != live_epoch and seq > acked.get(epoch, 0):
                    found.setdefault((epoch, seq), record)
    except OSError as exc:
        return Salvage(quarantined.name, (), {}, str(exc))
    return Salvage(quarantined.name, tuple(found[key] for key in sorted(found)), acked)


def _acked(path: Path) -> dict[str, int]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        try:
            rows = dict(conn.execute("SELECT key, value FROM sync_state"))
        finally:
            conn.close()
        return {str(rows.get("journal_epoch", "")): int(rows.get("tx_acked", 0))}
    except (sqlite3.Error, TypeError, ValueError):
        return {}  # unknown: everything readable is sent, HQ keeps what it has once


def _carve(path: Path) -> Iterator[dict[str, Any]]:
    decoder = json.JSONDecoder()
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for match in _RECORD_START.finditer(data):
            window = data[match.start() : match.start() + _LONGEST_RECORD]
            text = window.decode("utf-8", errors="replace")
            try:
                value, _ = decoder.raw_decode(text)
            except ValueError:
                continue
            record = _as_record(value)
            if record is not None:
                yield record


def _as_record(record: object) -> dict[str, Any] | None:
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("seq"), int)
        or isinstance(record.get("seq"), bool)
        or not isinstance(record.get("hash"), str)
        or not isinstance(record.get("id"), str)
    ):
        return None
    try:
        return record if record_hash(record) == record["hash"] else None
    except TypeError:  # a float or a key no record of ours has
        return None


def pending(path: Path) -> list[Path]:
    """Quarantined files beside the database at ``path`` not salvaged yet."""
    return sorted(
        p
        for p in path.parent.glob(path.name + ".corrupt-*")
        if not p.name.endswith(("-wal", "-shm", DONE_SUFFIX))
        and not Path(str(p) + DONE_SUFFIX).exists()
    )


def mark_done(quarantined: Path, salvage: Salvage) -> None:
    Path(str(quarantined) + DONE_SUFFIX).write_text(salvage.describe() + "\n")


def salvage_quarantined(store: "Store") -> list[Salvage]:
    """Read back every quarantined file beside ``store`` not salvaged yet, and queue for HQ
    what it held that HQ had not acknowledged. Safe to run again: records are keyed by
    (epoch, seq) and a file is marked done only once its records are kept."""
    done = []
    for quarantined in pending(store.path):
        salvage = recover(quarantined, store.epoch)
        try:
            kept = store.add_salvaged(salvage.records) if salvage.records else 0
        except StoreError as exc:
            logger.error("salvage of %s: %s; tried again at the next start", quarantined, exc)
            continue
        mark_done(quarantined, salvage)
        logger.warning("salvage of %s; %d queued for HQ", salvage.describe(), kept)
        done.append(salvage)
    return done
