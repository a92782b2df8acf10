"""Writing parsed HQ changes into the allowlist tables of a connection (live or staging).

Used by :mod:`terminal.store.sync_port` for change batches (on the live database, inside its
transaction) and for snapshots (on the staging database). Every statement is an upsert keyed by
the object's id, so applying the same change twice leaves the same rows. What this terminal does
not keep (:mod:`terminal.store.keeping`) is cut out before it is written.
"""

import json
import logging
import sqlite3
from datetime import date
from typing import Any

from models.canonical import canonical_json
from models.schedule import AccessGroup, TimeWindow
from sync.changes import (
    CardRecord,
    CardUpsert,
    Change,
    FaceDelete,
    FaceUpsert,
    GroupDelete,
    GroupUpsert,
    HolderDelete,
    HolderUpsert,
    HolidayUpsert,
    LedgerChange,
    RuleUpsert,
    UnknownChange,
)
from terminal.store import allowlist
from terminal.store.keeping import Cut, Keeping

logger = logging.getLogger(__name__)

# No unit or department: no rule reads them (docs/privacy.md), so they are not kept.
UPSERT_HOLDER = (
    "INSERT INTO holders (id, name, card_class, status, valid_from, valid_until, "
    "spend_only_until, require_face, pin_hash, services, canteens, qr_keys, change_seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
    "name = excluded.name, card_class = excluded.card_class, status = excluded.status, "
    "valid_from = excluded.valid_from, valid_until = excluded.valid_until, "
    "spend_only_until = excluded.spend_only_until, require_face = excluded.require_face, "
    "pin_hash = excluded.pin_hash, services = excluded.services, canteens = excluded.canteens, "
    "qr_keys = excluded.qr_keys, change_seq = excluded.change_seq"
)
UPSERT_CARD = (
    "INSERT INTO cards (number, holder_id, issue_seq, uid, card_class, status, valid_from, "
    "valid_until, status_since, change_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (number) DO UPDATE SET holder_id = excluded.holder_id, "
    "issue_seq = excluded.issue_seq, uid = excluded.uid, card_class = excluded.card_class, "
    "status = excluded.status, valid_from = excluded.valid_from, "
    "valid_until = excluded.valid_until, status_since = excluded.status_since, "
    "change_seq = excluded.change_seq"
)
UPSERT_FACE = (
    "INSERT INTO faces (holder_id, model, template, photo, change_seq) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (holder_id) DO UPDATE SET model = excluded.model, "
    "template = excluded.template, photo = excluded.photo, change_seq = excluded.change_seq"
)
UPSERT_PURSE = (
    "INSERT INTO purses (account, purse, balance, expires, change_seq) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (account, purse) DO UPDATE SET balance = excluded.balance, "
    "expires = coalesce(excluded.expires, purses.expires), change_seq = excluded.change_seq"
)
INSERT_LEDGER = (
    "INSERT OR IGNORE INTO ledger (id, account, purse, delta, balance_after, reason, "
    "origin_tid, origin_tx_seq, origin_tx_id, at, change_seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
UPSERT_RULE = (
    "INSERT INTO rules (id, type, body, change_seq) VALUES (?, ?, ?, ?) ON CONFLICT (id) "
    "DO UPDATE SET type = excluded.type, body = excluded.body, change_seq = excluded.change_seq"
)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


# Most holders share a few service and canteen lists: their JSON is remembered (a bounded
# number of distinct lists) instead of encoded twice a holder.
_LIST_JSON: dict[tuple[str, ...], str] = {}
_LIST_JSON_MAX = 1024


def _json(value: Any) -> str:
    return _ENCODER.encode(value)


def _list_json(values: tuple[str, ...]) -> str:
    text = _LIST_JSON.get(values)
    if text is None:
        text = _json(list(values))
        if len(_LIST_JSON) < _LIST_JSON_MAX:
            _LIST_JSON[values] = text
    return text


def holder_values(change: HolderUpsert, cut: Cut) -> tuple[Any, ...]:
    h = change.holder
    return (
        h.id, cut.name(h.name), h.card_class, h.status, h.valid_from, h.valid_until,
        h.spend_only_until, int(h.require_face), cut.pin(h.pin_hash), _list_json(h.services),
        _list_json(h.canteens),
        _json([{"k": k, "pub": pub} for k, pub in h.qr_keys]) if h.qr_keys else "[]",
        change.seq,
    )  # fmt: skip


def card_values(card: CardRecord, status: str, since: str | None, seq: int) -> tuple[Any, ...]:
    return (
        card.number, card.holder_id, card.issue_seq, card.uid, card.card_class, status,
        card.valid_from, card.valid_until, since, seq,
    )  # fmt: skip


class Applier:
    """Writes parsed changes into a connection's allowlist tables (live or staging)."""

    def __init__(
        self, conn: sqlite3.Connection, tid: str, *, live: bool, cut: Cut | None = None
    ) -> None:
        self.conn = conn
        self.tid = tid
        self.live = live
        self.cut = cut or Cut(Keeping())

    def apply(self, change: Change) -> None:
        conn = self.conn
        match change:
            case HolderUpsert(_, h):
                conn.execute(UPSERT_HOLDER, holder_values(change, self.cut))
                allowlist.set_holder_groups(conn, h.id, h.groups)
            case HolderDelete(_, holder_id):
                # PROTOCOL.md: deleting purges the holder's cards and face data on the terminal.
                for table, column in (
                    ("holders", "id"),
                    ("holder_groups", "holder_id"),
                    ("cards", "holder_id"),
                    ("faces", "holder_id"),
                ):
                    conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (holder_id,))
            case CardUpsert():
                self._card(change)
            case GroupUpsert(seq, g):
                windows = tuple(TimeWindow(frozenset(w.days), w.start, w.end) for w in g.windows)
                allowlist.upsert_group(
                    conn, AccessGroup(g.id, frozenset(g.doors), windows, g.calendar), seq
                )
            case GroupDelete(_, group_id):
                conn.execute("DELETE FROM access_groups WHERE id = ?", (group_id,))
                conn.execute("DELETE FROM holder_groups WHERE group_id = ?", (group_id,))
            case HolidayUpsert(_, calendar, holidays, workdays):
                conn.execute("DELETE FROM calendar_days WHERE calendar = ?", (calendar,))
                allowlist.set_calendar(
                    conn,
                    calendar,
                    [date.fromisoformat(d) for d in holidays],
                    [date.fromisoformat(d) for d in workdays],
                )
            case RuleUpsert(seq, rule_id, rule_type, body):
                conn.execute(UPSERT_RULE, (rule_id, rule_type, canonical_json(body).decode(), seq))
            case FaceUpsert(seq, holder_id, model, template, photo):
                if self.cut.face():
                    conn.execute(UPSERT_FACE, (holder_id, model, template, photo, seq))
            case FaceDelete(_, holder_id):
                conn.execute("DELETE FROM faces WHERE holder_id = ?", (holder_id,))
            case LedgerChange():
                self._ledger(change)
            case UnknownChange(seq, kind):
                logger.warning("change %d of unknown kind %r skipped", seq, kind)

    def _card(self, change: CardUpsert) -> None:
        card, seq, conn = change.card, change.seq, self.conn
        status, since = card.status, card.status_since
        if self.live:
            row = conn.execute("SELECT change_seq FROM cards WHERE number = ?", (card.number,))
            existing = row.fetchone()
            if existing is not None and int(existing[0]) > seq:
                return  # a newer priority deny already set this card; the log will catch up
            deny = conn.execute(
                "SELECT status, since, seq FROM card_deny WHERE number = ?", (card.number,)
            ).fetchone()
            if deny is not None and int(deny[2]) > seq:
                status, since, seq = str(deny[0]), deny[1], int(deny[2])
        if card.uid is not None:
            # A chip UID belongs to one card; a re-used UID moves to the newest card.
            conn.execute(
                "UPDATE cards SET uid = NULL WHERE uid = ? AND number != ?", (card.uid, card.number)
            )
        conn.execute(UPSERT_CARD, card_values(card, status, since, seq))

    def _ledger(self, change: LedgerChange) -> None:
        entry, conn = change.entry, self.conn
        origin = entry.origin
        cursor = conn.execute(
            INSERT_LEDGER,
            (
                entry.id, entry.account, entry.purse, entry.delta, entry.balance_after,
                entry.reason, origin.tid if origin else None, origin.tx_seq if origin else None,
                origin.tx_id if origin else None, entry.at, change.seq,
            ),
        )  # fmt: skip
        if cursor.rowcount == 0:
            return  # this entry was applied before: its balance and reconciliation too
        # HQ applies its ledger in order, so its balance_after is the purse's balance now.
        conn.execute(
            UPSERT_PURSE, (entry.account, entry.purse, entry.balance_after, None, change.seq)
        )
        if origin is not None and origin.tid == self.tid:
            # One of our own debits is now in HQ's ledger: it stops being pending, once.
            conn.execute(
                "DELETE FROM pending_debits WHERE tx_id = ? AND purse = ?",
                (origin.tx_id, entry.purse),
            )
