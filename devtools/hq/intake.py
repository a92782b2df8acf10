"""What HQ does with what terminals send: transactions, events, statuses, command replies.

A ``tx`` batch is stored and its money posted in one transaction: a record already held (same
terminal, same journal epoch, same seq) is skipped, so its debit is never posted twice, whether
the terminal resent it, the broker redelivered it, or HQ was killed halfway and restarted. Only
then is ``txack`` published, naming the journal epoch and the highest seq below which HQ holds
every record of it.

A record of an epoch HQ has not seen from this terminal means its journal started again (a
damaged database replaced by an empty one): HQ raises a ``journal_reset`` alarm and counts the
new journal from its seq 1, instead of taking its records for ones it already has. The records
arrive signed with the enrolled terminal's key, so only that terminal can start an epoch.
"""

import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from devtools.hq.db import HqDb, now_iso, text_of
from devtools.hq.office import Office, OfficeError
from models.canonical import ZERO_HASH, record_hash
from sync.changes import bad, integer

logger = logging.getLogger(__name__)

PAYMENT_KINDS = frozenset({"meal", "shop", "barber"})


def _checked_record(record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise bad("a tx record is an object")
    integer(record, "seq", minimum=1)
    if not isinstance(record.get("id"), str) or not isinstance(record.get("hash"), str):
        raise bad("a tx record needs id and hash")
    epoch = record.get("epoch", "")
    if not isinstance(epoch, str) or len(epoch) > 64:
        raise bad(f"tx record {record['seq']}: epoch must be a string of at most 64 characters")
    if record["hash"] != record_hash(record):
        raise bad(f"tx record {record['seq']}: hash does not match its content")
    return record


def _epoch(record: Mapping[str, Any]) -> str:
    return str(record.get("epoch", ""))


def raise_alarm(conn: sqlite3.Connection, tid: str, kind: str, detail: Mapping[str, Any]) -> None:
    """Something about a terminal an operator must look at (``ykt hq alarms``)."""
    logger.error("terminal %s: %s %s", tid, kind, dict(detail))
    conn.execute(
        "INSERT INTO alarms (tid, kind, detail, at) VALUES (?, ?, ?, ?)",
        (tid, kind, text_of(detail), now_iso()),
    )


def _known_epoch(conn: sqlite3.Connection, tid: str, epoch: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM tx WHERE tid = ? AND epoch = ? LIMIT 1", (tid, epoch)
    ).fetchone()
    return row is not None


def _start_epoch(conn: sqlite3.Connection, tid: str, old: str, new: str) -> None:
    """The terminal's journal started again: count the new one from its seq 1."""
    had = conn.execute("SELECT count(*), max(seq) FROM tx WHERE tid = ?", (tid,)).fetchone()
    if had[0]:
        acked = conn.execute(
            "SELECT acked_through FROM terminals WHERE tid = ?", (tid,)
        ).fetchone()[0]
        raise_alarm(
            conn,
            tid,
            "journal_reset",
            {
                "old_epoch": old,
                "new_epoch": new,
                "old_acked_through": int(acked),
                "old_records": int(had[0]),
            },
        )
    conn.execute(
        "UPDATE terminals SET epoch = ?, acked_through = 0, last_hash = NULL, chain_break = NULL "
        "WHERE tid = ?",
        (new, tid),
    )


def _differs(conn: sqlite3.Connection, tid: str, record: Mapping[str, Any]) -> None:
    """A record HQ already holds, sent again: it must be the same one."""
    held = conn.execute(
        "SELECT record FROM tx WHERE tid = ? AND epoch = ? AND seq = ?",
        (tid, _epoch(record), record["seq"]),
    ).fetchone()
    if held is not None and json.loads(held[0]).get("hash") != record["hash"]:
        raise_alarm(
            conn,
            tid,
            "tx_differs",
            {
                "epoch": _epoch(record),
                "seq": record["seq"],
                "held_id": json.loads(held[0])["id"],
                "sent_id": record["id"],
            },
        )


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
    epoch = _epoch(record)
    entry = f"{tid}:{record['seq']}" if not epoch else f"{tid}:{epoch}:{record['seq']}"
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
            entry_id=f"{entry}:{part['purse']}",
        )


def _advance(conn: sqlite3.Connection, tid: str) -> int:
    """Move the terminal's acked mark over every contiguous record of its current epoch,
    checking the hash chain."""
    acked, last_hash, epoch, known_break = conn.execute(
        "SELECT acked_through, last_hash, epoch, chain_break FROM terminals WHERE tid = ?", (tid,)
    ).fetchone()
    acked, last_hash = int(acked), str(last_hash or ZERO_HASH)
    moved = False
    for seq, text in conn.execute(
        "SELECT seq, record FROM tx WHERE tid = ? AND epoch = ? AND seq > ? ORDER BY seq",
        (tid, epoch, acked),
    ).fetchall():
        if seq != acked + 1:
            break
        record = json.loads(text)
        if record.get("prev_hash") != last_hash:
            # Not acknowledged past: the terminal keeps the records (and resends them) until
            # people have looked at why its journal does not follow on from what HQ holds.
            if known_break != seq:
                logger.error("terminal %s: hash chain broken at tx %d", tid, seq)
                conn.execute("UPDATE terminals SET chain_break = ? WHERE tid = ?", (seq, tid))
                raise_alarm(conn, tid, "chain_break", {"epoch": epoch, "seq": seq})
            break
        acked, last_hash, moved = seq, record["hash"], True
    if moved:
        conn.execute(
            "UPDATE terminals SET acked_through = ?, last_hash = ? WHERE tid = ?",
            (acked, last_hash, tid),
        )
    return int(acked)


def ingest_tx(db: HqDb, tid: str, records: Sequence[Any]) -> tuple[int, int, str]:
    """Store ``records`` of terminal ``tid``; returns (new records, acked-through seq, the
    epoch it counts in)."""
    checked = sorted((_checked_record(r) for r in records), key=lambda r: int(r["seq"]))
    office = Office(db)
    new = 0
    with db.tx() as conn:
        received = now_iso()
        current = _current_epoch(conn, tid)
        for record in checked:
            epoch = _epoch(record)
            if epoch != current and not _known_epoch(conn, tid, epoch):
                _start_epoch(conn, tid, current, epoch)
                current = epoch
            new += _keep(office, conn, tid, record, received)
        through = _advance(conn, tid)
    return new, through, current


def _keep(
    office: Office, conn: sqlite3.Connection, tid: str, record: Mapping[str, Any], received: str
) -> int:
    """Store one record (posting its money) unless HQ holds it; 1 if it was new."""
    cursor = conn.execute(
        "INSERT OR IGNORE INTO tx (tid, epoch, seq, id, record, received_at) VALUES (?,?,?,?,?,?)",
        (tid, _epoch(record), record["seq"], record["id"], text_of(record), received),
    )
    if cursor.rowcount:
        try:
            _post_money(office, conn, tid, record)
        except OfficeError as exc:
            # The record is the terminal's signed account of what happened: kept, never
            # refused (refusing it would have the terminal send it for ever); the money it
            # names cannot be posted as it stands, which an operator has to settle.
            raise_alarm(
                conn,
                tid,
                "posting_refused",
                {"epoch": _epoch(record), "seq": record["seq"], "error": str(exc)[:200]},
            )
        return 1
    _differs(conn, tid, record)
    return 0


def ingest_salvaged(db: HqDb, tid: str, records: Sequence[Any]) -> tuple[int, str, list[int]]:
    """Store records of an earlier journal the terminal read back from a quarantined file;
    returns (new records, their epoch, every seq HQ now holds of them).

    They never start an epoch (that journal is over, whatever HQ has seen of the next). Each
    one's hash must match its content (and the message is the enrolled terminal's), so they
    count as the terminal's own records; an operator hears how many came this way.
    """
    checked = sorted((_checked_record(r) for r in records), key=lambda r: int(r["seq"]))
    epochs = {_epoch(r) for r in checked}
    if len(epochs) != 1:
        raise bad("salvaged tx: records of exactly one journal epoch")
    (epoch,) = epochs
    office = Office(db)
    new = 0
    with db.tx() as conn:
        current = _current_epoch(conn, tid)
        received = now_iso()
        for record in checked:
            new += _keep(office, conn, tid, record, received)
        if epoch == current:
            # The terminal's new journal has sent nothing yet, so HQ still counts this one:
            # its records arriving late move its acked mark as any would.
            _advance(conn, tid)
        if new:
            seqs = [int(r["seq"]) for r in checked]
            raise_alarm(
                conn,
                tid,
                "records_salvaged",
                {"epoch": epoch, "new": new, "first_seq": seqs[0], "last_seq": seqs[-1]},
            )
    return new, epoch, [int(r["seq"]) for r in checked]


def _current_epoch(conn: sqlite3.Connection, tid: str) -> str:
    row = conn.execute("SELECT epoch FROM terminals WHERE tid = ?", (tid,)).fetchone()
    if row is None:
        raise bad(f"terminal {tid} is not enrolled")
    return str(row[0])


def acked_through(db: HqDb, tid: str) -> tuple[int, str]:
    """The terminal's acknowledged position: (seq, journal epoch)."""
    row = db.conn.execute(
        "SELECT acked_through, epoch FROM terminals WHERE tid = ?", (tid,)
    ).fetchone()
    return (int(row[0]), str(row[1])) if row else (0, "")


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
        row = conn.execute(
            "SELECT acked_through, epoch FROM terminals WHERE tid = ?", (tid,)
        ).fetchone()
        last, epoch = body.get("last_tx_seq"), body.get("journal_epoch", "")
        if row is not None and isinstance(last, int) and epoch == row[1] and last < int(row[0]):
            # The same journal, but shorter than what HQ already holds of it.
            raise_alarm(
                conn,
                tid,
                "seq_backwards",
                {"epoch": epoch, "last_tx_seq": last, "acked_through": int(row[0])},
            )
        known = conn.execute("SELECT body FROM statuses WHERE tid = ?", (tid,)).fetchone()
        earlier = json.loads(known[0]) if known else {}
        tip = body.get("last_tx_hash")
        if isinstance(last, int) and isinstance(tip, str) and tip != earlier.get("last_tx_hash"):
            held = conn.execute(
                "SELECT record FROM tx WHERE tid = ? AND epoch = ? AND seq = ?", (tid, epoch, last)
            ).fetchone()
            if held is not None and json.loads(held[0]).get("hash") != tip:
                # The journal's tip is not the record HQ holds at that seq: rewritten since.
                raise_alarm(conn, tid, "tip_differs", {"epoch": epoch, "seq": last})
        if body.get("degraded_why") == "far_behind" and earlier.get("degraded_why") != "far_behind":
            # Paying on data this stale (voided cards, balances) is what the caps are for; the
            # office should know why a terminal is holding money to them.
            raise_alarm(conn, tid, "far_behind", {"behind_changes": body.get("behind_changes")})
        if body.get("quarantined"):
            before = earlier.get("quarantined")
            if body["quarantined"] != before:
                raise_alarm(
                    conn,
                    tid,
                    "database_quarantined",
                    {"files": body["quarantined"], "epoch": epoch},
                )
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
