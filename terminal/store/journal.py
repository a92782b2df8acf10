"""Appending to the hash-chained journal, durably, with the outbox row in the same transaction."""

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.canonical import ZERO_HASH, canonical_json
from models.journal import ChainBreak, TransactionDraft, seal, verify_chain

_INSERT_JOURNAL = (
    "INSERT INTO journal (seq, id, kind, at, card, holder_id, decision, reason, prev_hash, hash, "
    "record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_OUTBOX = "INSERT INTO outbox (topic, ref, queued_at) VALUES (?, ?, ?)"
_INSERT_EVENT = (
    "INSERT INTO events (type, at, tx_seq, card, holder_id, door, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class Committed:
    """A transaction's place in the journal once it is durable."""

    seq: int
    id: str
    hash: str


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """A security event to journal (and upload) together with the transaction that raised it."""

    type: str
    detail: dict[str, Any]


def chain_tip(conn: sqlite3.Connection) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, ZERO_HASH) if row is None else (int(row[0]), str(row[1]))


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def tip_time(conn: sqlite3.Connection) -> datetime | None:
    """The latest ``at`` among the newest records (those of a clock set back stand after it).

    Only the newest thousand are read: the start-up budget allows no scan of a long journal,
    and a clock step older than that many records has long been outlived.
    """
    row = conn.execute(
        "SELECT max(at) FROM (SELECT at FROM journal ORDER BY seq DESC LIMIT 1000)"
    ).fetchone()
    return None if row is None or row[0] is None else parse_time(str(row[0]))


def append(
    conn: sqlite3.Connection,
    draft: TransactionDraft,
    *,
    seq: int,
    tx_id: str,
    prev_hash: str,
    event: SecurityEvent | None = None,
    epoch: str = "",
) -> Committed:
    """Insert the sealed record, its outbox row and its event; the caller owns the transaction."""
    record = seal(draft, seq=seq, tx_id=tx_id, prev_hash=prev_hash, epoch=epoch)
    conn.execute(
        _INSERT_JOURNAL,
        (
            seq,
            tx_id,
            draft.kind,
            draft.at,
            draft.card,
            draft.holder_id,
            draft.decision,
            str(draft.reason),
            prev_hash,
            record["hash"],
            canonical_json(record).decode(),
        ),
    )
    conn.execute(_INSERT_OUTBOX, ("tx", seq, draft.at))
    if event is not None:
        cursor = conn.execute(
            _INSERT_EVENT,
            (
                event.type,
                draft.at,
                seq,
                draft.card,
                draft.holder_id,
                draft.door,
                canonical_json(event.detail).decode(),
            ),
        )
        conn.execute(_INSERT_OUTBOX, ("event", cursor.lastrowid, draft.at))
    return Committed(seq, tx_id, record["hash"])


def add_event(conn: sqlite3.Connection, event: SecurityEvent, *, at: str, door: str | None) -> int:
    """A security event not tied to a transaction (door forced, tamper), queued for upload."""
    cursor = conn.execute(
        _INSERT_EVENT,
        (event.type, at, None, None, None, door, canonical_json(event.detail).decode()),
    )
    event_id = int(cursor.lastrowid or 0)
    conn.execute(_INSERT_OUTBOX, ("event", event_id, at))
    return event_id


def records(conn: sqlite3.Connection, from_seq: int = 1) -> Iterator[dict[str, Any]]:
    cursor = conn.execute("SELECT record FROM journal WHERE seq >= ? ORDER BY seq", (from_seq,))
    for (text,) in cursor:
        yield json.loads(text)


def verify(conn: sqlite3.Connection) -> ChainBreak | None:
    """Walk the whole journal; also checks the indexed columns agree with the sealed record."""
    cursor = conn.execute(
        "SELECT seq, hash, prev_hash, decision, reason, kind, record FROM journal ORDER BY seq"
    )
    disagreeing: list[int] = []

    def checked() -> Iterator[dict[str, Any]]:
        for seq, *columns, text in cursor:
            record = json.loads(text)
            fields = ("hash", "prev_hash", "decision", "reason", "kind")
            if columns != [record.get(name) for name in fields]:
                disagreeing.append(seq)
                return
            yield record

    chain_break = verify_chain(checked())
    if disagreeing:
        return ChainBreak(disagreeing[0], "indexed columns disagree with the sealed record")
    return chain_break
