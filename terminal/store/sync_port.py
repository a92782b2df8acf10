"""The store's side of the HQ link: ``sync.port.SyncPort`` over the terminal's SQLite database.

Every method is one IMMEDIATE transaction through :meth:`Store.write`, so it serialises with the
tap path and is durable (``synchronous=FULL``) when it returns; the link acknowledges the MQTT
message only after that. The applied change seq is stored in the same transaction as the changes
it covers, so a crash either keeps a whole batch and its seq or neither: nothing applies twice.
"""

import itertools
import json
import logging
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from models.errors import StoreError
from sync.changes import CardUpsert, Change, DenyEntry, FaceUpsert, HolderUpsert
from sync.port import BatchOutcome, Head, Marks, OutboxEvent, OutboxStats, PurseBalance
from terminal.store.keeping import Cut, Keeping, snapshot_wanted
from terminal.store.schema import quarantined_files
from terminal.store.store import CHANGE_SEQ, JOURNAL_EPOCH, Store
from terminal.store.sync_apply import (
    UPSERT_CARD,
    UPSERT_FACE,
    UPSERT_HOLDER,
    UPSERT_PURSE,
    Applier,
    card_values,
    holder_values,
)

logger = logging.getLogger(__name__)

HEAD_SEQ, HEAD_ISSUED, HEAD_EXPIRES = "head_seq", "head_issued", "head_expires"
HQ_KEYSET = "hq_keyset"
SNAPSHOT_ID, TX_ACKED = "snapshot_id", "tx_acked"

# What a snapshot replaces (merged in, see _Stage._swap), parents before children.
SNAPSHOT_TABLES = (
    "holders",
    "cards",
    "holder_groups",
    "access_groups",
    "group_doors",
    "group_windows",
    "calendar_days",
    "rules",
    "faces",
    "purses",
)

_INSERT_MEMBER = "INSERT OR IGNORE INTO holder_groups (holder_id, group_id) VALUES (?, ?)"
# Staged rows go in this many to a statement. One execution per row re-did each statement's
# set-up (the CHECK constraints' IN lists build a lookup table per execution): at 64 rows a
# statement staging took a third of the time. Rows are still inserted in order, one by one, with
# the same upsert on each, so a key repeated within a chunk ends the same way.
ROWS_PER_INSERT = 64


def _multi_row(sql: str, rows: int) -> str:
    """``INSERT ... VALUES (?, ...) rest`` with ``rows`` groups of placeholders."""
    head, tail = sql.split(" VALUES ", 1)
    group, rest = tail.split(")", 1)
    return f"{head} VALUES {', '.join([group + ')'] * rows)}{rest}"


_STAGE_SQL = {
    sql: _multi_row(sql, ROWS_PER_INSERT)
    for sql in (UPSERT_HOLDER, _INSERT_MEMBER, UPSERT_CARD, UPSERT_FACE, UPSERT_PURSE)
}


def _insert_rows(conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    whole = len(rows) - len(rows) % ROWS_PER_INSERT
    if whole:
        batches = (
            tuple(itertools.chain.from_iterable(rows[i : i + ROWS_PER_INSERT]))
            for i in range(0, whole, ROWS_PER_INSERT)
        )
        conn.executemany(_STAGE_SQL[sql], batches)
    if whole < len(rows):
        conn.executemany(sql, rows[whole:])


_TX_RECORDS = (
    "SELECT j.record FROM outbox AS o JOIN journal AS j ON j.seq = o.ref "
    "WHERE o.topic = 'tx' AND o.ref > ? ORDER BY o.ref LIMIT ?"
)
_EVENTS_DUE = (
    "SELECT e.id, e.type, e.at, e.tx_seq, e.card, e.holder_id, e.door, e.detail "
    "FROM outbox AS o JOIN events AS e ON e.id = o.ref WHERE o.topic = 'event' "
    "AND (o.last_sent_at IS NULL OR o.last_sent_at < ?) ORDER BY o.ref LIMIT ?"
)


def _state(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM sync_state WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO sync_state (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def _columns(conn: sqlite3.Connection, table: str) -> tuple[list[str], list[str]]:
    """A table's columns and its primary key columns (empty for a rowid-only table)."""
    info = conn.execute(f"PRAGMA main.table_info({table})").fetchall()
    columns = [str(row[1]) for row in info]
    key = [str(row[1]) for row in sorted(info, key=lambda row: row[5]) if row[5] > 0]
    return columns, key


class _Stage:
    """A snapshot being written into a staging database beside the live one."""

    def __init__(self, port: "StoreSyncPort", snap_id: str, seq: int) -> None:
        self._port = port
        self.snap_id = snap_id
        self.seq = seq
        self.path = port.store.path.with_name(port.store.path.name + ".snapshot")
        for suffix in ("", "-journal"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # A staging file is disposable: a crash just means asking for the snapshot again.
        self._conn.execute("PRAGMA journal_mode = OFF")
        self._conn.execute("PRAGMA synchronous = OFF")
        with port.store.read() as live:
            for table in (*SNAPSHOT_TABLES, "card_deny"):
                row = live.execute(
                    "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?", (table,)
                ).fetchone()
                self._conn.execute(row[0])
        self._cut = Cut(port.keeping)
        self._applier = Applier(self._conn, port.tid, live=False, cut=self._cut)

    def add(self, items: Sequence[Change | PurseBalance]) -> None:
        """Stage a chunk's items; the bulk kinds go in with one statement per table."""
        holders: list[tuple[Any, ...]] = []
        members: list[tuple[str, str]] = []
        cards: list[tuple[Any, ...]] = []
        faces: list[tuple[Any, ...]] = []
        purses: list[tuple[Any, ...]] = []
        others: list[Change] = []
        for item in items:
            if isinstance(item, PurseBalance):
                purses.append((item.account, item.purse, item.balance, item.expires, self.seq))
            elif isinstance(item, HolderUpsert):
                holders.append(holder_values(item, self._cut))
                members.extend((item.holder.id, group) for group in item.holder.groups)
            elif isinstance(item, CardUpsert):
                cards.append(
                    card_values(item.card, item.card.status, item.card.status_since, item.seq)
                )
            elif isinstance(item, FaceUpsert):
                if self._cut.face():
                    faces.append((item.holder_id, item.model, item.template, item.photo, item.seq))
            else:
                others.append(item)
        conn = self._conn
        conn.execute("BEGIN")
        try:
            _insert_rows(conn, UPSERT_HOLDER, holders)
            _insert_rows(conn, _INSERT_MEMBER, members)
            _insert_rows(conn, UPSERT_CARD, cards)
            _insert_rows(conn, UPSERT_FACE, faces)
            _insert_rows(conn, UPSERT_PURSE, purses)
            for change in others:
                self._applier.apply(change)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"cannot stage snapshot {self.snap_id}: {exc}") from exc

    def commit(self, *, seq: int, snap_id: str, tx_through: int) -> None:
        self._conn.close()
        store = self._port.store
        try:
            with store.read() as conn:
                conn.execute("ATTACH DATABASE ? AS snap", (str(self.path),))
                try:
                    with store.write() as live:
                        self._swap(live, seq, snap_id, tx_through)
                finally:
                    conn.execute("DETACH DATABASE snap")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot apply snapshot {snap_id}: {exc}") from exc
        finally:
            self.path.unlink(missing_ok=True)

    def _swap(self, live: sqlite3.Connection, seq: int, snap_id: str, tx_through: int) -> None:
        # Merged rather than emptied and refilled: rows that stay are updated in place, so
        # delete triggers (face data, evidence stills of a holder) fire only for what HQ removed.
        tables = {table: _columns(live, table) for table in SNAPSHOT_TABLES}
        for table in reversed(SNAPSHOT_TABLES):
            columns, key = tables[table]
            if key:
                names = ", ".join(key)
                live.execute(
                    f"DELETE FROM main.{table} WHERE ({names}) NOT IN "
                    f"(SELECT {names} FROM snap.{table})"
                )
            else:
                live.execute(f"DELETE FROM main.{table}")
        # A chip UID may have moved to another card: clear them all, the snapshot sets them.
        live.execute("UPDATE main.cards SET uid = NULL WHERE uid IS NOT NULL")
        for table in SNAPSHOT_TABLES:
            columns, key = tables[table]
            names = ", ".join(columns)
            sql = f"INSERT INTO main.{table} ({names}) SELECT {names} FROM snap.{table} WHERE true"
            if key:
                rest = [c for c in columns if c not in key]
                action = (
                    "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest)
                    if rest
                    else "DO NOTHING"
                )
                sql += f" ON CONFLICT ({', '.join(key)}) {action}"
            live.execute(sql)
        # Priority denies newer than the snapshot still win over it.
        live.execute(
            "UPDATE cards SET status = d.status, status_since = d.since, change_seq = d.seq "
            "FROM card_deny AS d WHERE cards.number = d.number AND d.seq > cards.change_seq"
        )
        live.execute("DELETE FROM card_deny WHERE seq <= ?", (seq,))
        # The snapshot's balances include our debits HQ had posted: they are no longer pending.
        live.execute("DELETE FROM pending_debits WHERE tx_seq <= ?", (tx_through,))
        self._cut.record(live, snapshot=True)
        self._port.store.set_state(live, CHANGE_SEQ, str(seq))
        _set(live, SNAPSHOT_ID, snap_id)

    def discard(self) -> None:
        try:
            self._conn.close()
        finally:
            self.path.unlink(missing_ok=True)


class StoreSyncPort:
    """Implements ``sync.port.SyncPort`` for terminal ``tid`` over ``store``, keeping of what
    HQ sends what ``keeping`` says (by default: faces, PIN hashes as sent, names masked)."""

    def __init__(self, store: Store, tid: str, *, keeping: Keeping | None = None) -> None:
        self.store = store
        self.tid = tid
        self.keeping = keeping or Keeping()

    def marks(self) -> Marks:
        with self.store.read() as conn:
            values = dict(conn.execute("SELECT key, value FROM sync_state").fetchall())
        head = None
        if HEAD_SEQ in values:
            head = Head(int(values[HEAD_SEQ]), values[HEAD_ISSUED], values[HEAD_EXPIRES])
        return Marks(
            change_seq=int(values.get(CHANGE_SEQ, 0)),
            head=head,
            snapshot_id=values.get(SNAPSHOT_ID),
            tx_acked=int(values.get(TX_ACKED, 0)),
            journal_epoch=values.get(JOURNAL_EPOCH, ""),
        )

    def apply_batch(self, first: int, last: int, changes: Sequence[Change]) -> BatchOutcome:
        with self.store.write() as conn:
            have = int(_state(conn, CHANGE_SEQ) or 0)
            if last <= have:
                return BatchOutcome.DUPLICATE
            if first > have + 1:
                return BatchOutcome.GAP
            # The PIN key is taken inside the transaction: see keeping.seal_pins.
            cut = Cut(self.keeping)
            applier = Applier(conn, self.tid, live=True, cut=cut)
            for change in changes:
                if change.seq > have:  # a batch overlapping what we have: only the new part
                    applier.apply(change)
            cut.record(conn, snapshot=False)
            conn.execute("DELETE FROM card_deny WHERE seq <= ?", (last,))
            self.store.set_state(conn, CHANGE_SEQ, str(last))
        return BatchOutcome.APPLIED

    def apply_deny(self, seq: int, entries: Sequence[DenyEntry]) -> int:
        changed = 0
        with self.store.write() as conn:
            if seq <= int(_state(conn, CHANGE_SEQ) or 0):
                return 0  # the change log already brought it
            for entry in entries:
                conn.execute(
                    "INSERT INTO card_deny (number, status, since, seq) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (number) DO UPDATE SET status = excluded.status, "
                    "since = excluded.since, seq = excluded.seq WHERE excluded.seq > card_deny.seq",
                    (entry.number, entry.status, entry.since, seq),
                )
                cursor = conn.execute(
                    "UPDATE cards SET status = ?, status_since = ?, change_seq = ? "
                    "WHERE number = ? AND change_seq < ?",
                    (entry.status, entry.since, seq, entry.number, seq),
                )
                changed += cursor.rowcount
        return changed

    def accept_head(self, head: Head) -> bool:
        issued = datetime.fromisoformat(head.issued)
        with self.store.write() as conn:
            seq_text, issued_text = _state(conn, HEAD_SEQ), _state(conn, HEAD_ISSUED)
            if (
                seq_text is not None
                and issued_text is not None
                and (head.seq < int(seq_text) or issued < datetime.fromisoformat(issued_text))
            ):
                return False
            _set(conn, HEAD_SEQ, str(head.seq))
            _set(conn, HEAD_ISSUED, head.issued)
            _set(conn, HEAD_EXPIRES, head.expires)
        return True

    def keyset(self) -> bytes | None:
        with self.store.read() as conn:
            text = _state(conn, HQ_KEYSET)
        return None if text is None else text.encode()

    def save_keyset(self, payload: bytes, version: int) -> None:
        with self.store.write() as conn:
            _set(conn, HQ_KEYSET, payload.decode())
        logger.info("HQ keyset %d stored", version)

    def snapshot_wanted(self) -> bool:
        """Data dropped under an earlier configuration (faces off, masked names, no PINs at a
        door) is kept under this one, and only a full snapshot brings it back: the engine asks
        with ``resync {"have": 0}`` and takes a snapshot even at the seq it has."""
        return snapshot_wanted(self.store, self.keeping)

    def begin_snapshot(self, snap_id: str, seq: int) -> _Stage:
        return _Stage(self, snap_id, seq)

    def tx_records(self, after: int, limit: int) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            rows = conn.execute(_TX_RECORDS, (after, limit)).fetchall()
        return [json.loads(text) for (text,) in rows]

    def mark_tx_sent(self, first: int, last: int, at: str) -> None:
        with self.store.write() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_sent_at = ? "
                "WHERE topic = 'tx' AND ref BETWEEN ? AND ?",
                (at, first, last),
            )

    def ack_tx(self, through: int) -> int:
        """Drop what HQ acknowledged, but never a record it was not sent: an ack beyond the
        first record still unsent (a faulty HQ, a crafted message, a journal that restarted)
        would otherwise delete records HQ never had."""
        with self.store.write() as conn:
            unsent = conn.execute(
                "SELECT min(ref) FROM outbox WHERE topic = 'tx' AND attempts = 0"
            ).fetchone()[0]
            last = int(conn.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()[0])
            held = min(last, last if unsent is None else int(unsent) - 1)
            if through > held:
                logger.warning(
                    "HQ acknowledged tx up to %d but was sent only up to %d (journal ends at "
                    "%d): the rest stays queued",
                    through,
                    held,
                    last,
                )
                through = held
            cursor = conn.execute("DELETE FROM outbox WHERE topic = 'tx' AND ref <= ?", (through,))
            if through > int(_state(conn, TX_ACKED) or 0):
                _set(conn, TX_ACKED, str(through))
            return cursor.rowcount

    def salvaged_due(self, limit: int, sent_before: str) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            # One epoch per message: HQ acknowledges them by epoch.
            due = "(last_sent_at IS NULL OR last_sent_at < :before)"
            rows = conn.execute(
                f"SELECT record FROM salvaged WHERE {due} AND epoch = "
                f"(SELECT epoch FROM salvaged WHERE {due} ORDER BY epoch, seq LIMIT 1) "
                "ORDER BY seq LIMIT :limit",
                {"before": sent_before, "limit": limit},
            ).fetchall()
        return [json.loads(text) for (text,) in rows]

    def mark_salvaged_sent(self, records: Sequence[Mapping[str, Any]], at: str) -> None:
        with self.store.write() as conn:
            conn.executemany(
                "UPDATE salvaged SET last_sent_at = ? WHERE epoch = ? AND seq = ?",
                [(at, str(r.get("epoch", "")), int(r["seq"])) for r in records],
            )

    def drop_salvaged(self, epoch: str, seqs: Sequence[int]) -> int:
        with self.store.write() as conn:
            cursor = conn.executemany(
                "DELETE FROM salvaged WHERE epoch = ? AND seq = ?", [(epoch, s) for s in seqs]
            )
            return cursor.rowcount

    def events_due(self, limit: int, sent_before: str) -> list[OutboxEvent]:
        with self.store.read() as conn:
            rows = conn.execute(_EVENTS_DUE, (sent_before, limit)).fetchall()
        events = []
        for event_id, kind, at, tx_seq, card, holder_id, door, detail in rows:
            body: dict[str, Any] = {"event_id": event_id, "type": kind, "at": at}
            body["detail"] = json.loads(detail)
            optional = {"tx_seq": tx_seq, "card": card, "holder_id": holder_id, "door": door}
            body.update({k: v for k, v in optional.items() if v is not None})
            events.append(OutboxEvent(int(event_id), body))
        return events

    def mark_events_sent(self, ids: Sequence[int], at: str) -> None:
        with self.store.write() as conn:
            conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_sent_at = ? "
                "WHERE topic = 'event' AND ref = ?",
                [(at, event_id) for event_id in ids],
            )

    def ack_events(self, ids: Sequence[int]) -> int:
        with self.store.write() as conn:
            cursor = conn.executemany(
                "DELETE FROM outbox WHERE topic = 'event' AND ref = ?", [(i,) for i in ids]
            )
            return cursor.rowcount

    def claim_command(self, cmd_id: str, name: str, at: str) -> bool:
        with self.store.write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO commands_done (id, name, received_at) VALUES (?, ?, ?)",
                (cmd_id, name, at),
            )
            return cursor.rowcount == 1

    def finish_command(self, cmd_id: str, outcome: str) -> None:
        with self.store.write() as conn:
            conn.execute("UPDATE commands_done SET outcome = ? WHERE id = ?", (outcome, cmd_id))

    def quarantined(self) -> list[str]:
        return quarantined_files(self.store.path)

    def outbox_stats(self) -> OutboxStats:
        with self.store.read() as conn:
            counts = dict(conn.execute("SELECT topic, count(*) FROM outbox GROUP BY topic"))
            oldest = conn.execute("SELECT min(queued_at) FROM outbox").fetchone()[0]
            tip = conn.execute("SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1").fetchone()
        last, tip_hash = (int(tip[0]), str(tip[1])) if tip else (0, None)
        return OutboxStats(
            int(counts.get("tx", 0)), int(counts.get("event", 0)), oldest, last, tip_hash
        )
