"""What HQ does with what terminals send: transactions, events, statuses, command replies.

A ``tx`` batch is stored and its money posted in one transaction: a record already held (same
terminal, same seq) is skipped, so its debit is never posted twice, whether the terminal resent
it, the broker redelivered it, or HQ was killed halfway and restarted. Only then is ``txack``
published, naming the highest seq below which HQ holds every record.
"""

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from models.canonical import ZERO_HASH, record_hash
from sync.changes import bad, integer
from sync.hq.db import HqDb, now_iso, text_of
from sync.hq.office import Office

logger = logging.getLogger(__name__)

PAYMENT_KINDS = frozenset({"meal", "shop", "barber"})


def _checked_record(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise bad("a tx record is an object")
    integer(record, "seq", minimum=1)
    if not isinstance(record.get("id"), str) or not isinstance(record.get("hash"), str):
        raise bad("a tx record needs id and hash")
    if record["hash"] != record_hash(record):
        raise bad(f"tx record {record['seq']}: hash does not match its content")
    return record


def _post_money(
    office: Office, conn: sqlite3.Connection, tid: str, record: Mapping[str, Any]
) -> None:
    """Post an allowed payment's debits (or a correction's refunds) to the holder's purses."""
    kind = record.get("kind")
    if record.get("decision") != "allow" or not record.get("holder_id"):
        return
    if kind in PAYMENT_KINDS:
        sign, reason = -1, "debit"
    elif kind == "correction":
        sign, reason = 1, "correction"
    else:
        return
    origin = {"tid": tid, "tx_seq": record["seq"], "tx_id": record["id"]}
    for part in record.get("split", []):
        amount = part.get("amount")
        if not isinstance(amount, int) or amount <= 0:
            continue
        office.post(
            conn,
            record["holder_id"],
            part["purse"],
            sign * amount,
            reason,
            origin=origin,
            entry_id=f"{tid}:{record['seq']}:{part['purse']}",
        )


def _advance(conn: sqlite3.Connection, tid: str) -> int:
    """Move the terminal's acked mark over every contiguous record, checking the hash chain."""
    acked, last_hash = conn.execute(
        "SELECT acked_through, last_hash FROM terminals WHERE tid = ?", (tid,)
    ).fetchone()
    acked, last_hash = int(acked), str(last_hash or ZERO_HASH)
    moved = False
    for seq, text in conn.execute(
        "SELECT seq, record FROM tx WHERE tid = ? AND seq > ? ORDER BY seq", (tid, acked)
    ).fetchall():
        if seq != acked + 1:
            break
        record = json.loads(text)
        if record.get("prev_hash") != last_hash:
            logger.error("terminal %s: hash chain broken at tx %d", tid, seq)
            conn.execute("UPDATE terminals SET chain_break = ? WHERE tid = ?", (seq, tid))
        acked, last_hash, moved = seq, record["hash"], True
    if moved:
        conn.execute(
            "UPDATE terminals SET acked_through = ?, last_hash = ? WHERE tid = ?",
            (acked, last_hash, tid),
        )
    return int(acked)


def ingest_tx(db: HqDb, tid: str, records: Sequence[Any]) -> tuple[int, int]:
    """Store ``records`` of terminal ``tid``; returns (new records, acked-through seq)."""
    checked = sorted((_checked_record(r) for r in records), key=lambda r: int(r["seq"]))
    office = Office(db)
    new = 0
    with db.tx() as conn:
        received = now_iso()
        for record in checked:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO tx (tid, seq, id, record, received_at) VALUES (?,?,?,?,?)",
                (tid, record["seq"], record["id"], text_of(record), received),
            )
            if cursor.rowcount:
                new += 1
                _post_money(office, conn, tid, record)
        through = _advance(conn, tid)
    return new, through


def acked_through(db: HqDb, tid: str) -> int:
    row = db.conn.execute("SELECT acked_through FROM terminals WHERE tid = ?", (tid,)).fetchone()
    return int(row[0]) if row else 0


def ingest_event(db: HqDb, tid: str, body: Mapping[str, Any]) -> int:
    event_id = integer(body, "event_id", minimum=0)
    with db.tx() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO events (tid, event_id, body, received_at) VALUES (?, ?, ?, ?)",
            (tid, event_id, text_of(body), now_iso()),
        )
    logger.info("terminal %s reported %s", tid, body.get("type"))
    return event_id


def store_status(db: HqDb, tid: str, body: Mapping[str, Any]) -> None:
    with db.tx() as conn:
        conn.execute(
            "INSERT INTO statuses (tid, body, at) VALUES (?, ?, ?) ON CONFLICT (tid) "
            "DO UPDATE SET body = excluded.body, at = excluded.at",
            (tid, text_of(body), now_iso()),
        )


def store_reply(db: HqDb, tid: str, body: Mapping[str, Any]) -> None:
    cmd_id = body.get("cmd")
    if not isinstance(cmd_id, str):
        raise bad("reply.cmd: the command id")
    with db.tx() as conn:
        conn.execute(
            "INSERT OR REPLACE INTO replies (cmd_id, tid, body, at) VALUES (?, ?, ?, ?)",
            (cmd_id, tid, text_of(body), now_iso()),
        )
