"""Reading the allowlist into immutable views for ``decide()``, and writing it in bulk."""

import json
import sqlite3
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import sqlite_utils

from models.cards import Card, CardStatus, Holder, HolderStatus
from models.door import DoorView
from models.schedule import AccessGroup, Calendar, TimeWindow

_CARD_BY_NUMBER = (
    "SELECT number, holder_id, issue_seq, card_class, status, valid_from, valid_until "
    "FROM cards WHERE number = ?"
)
_CARD_BY_UID = (
    "SELECT number, holder_id, issue_seq, card_class, status, valid_from, valid_until "
    "FROM cards WHERE uid = ?"
)
_HOLDER = (
    "SELECT id, name, card_class, status, valid_from, valid_until, require_face "
    "FROM holders WHERE id = ?"
)
_NEWEST_ISSUE = "SELECT max(issue_seq) FROM cards WHERE holder_id = ?"
# The holder's current card: the highest issue sequence (an older card is void); should HQ ever
# send two cards with the same sequence, an active one is preferred, then the lower number.
_CURRENT_CARD = (
    "SELECT number, holder_id, issue_seq, card_class, status, valid_from, valid_until "
    "FROM cards WHERE holder_id = ? "
    "ORDER BY issue_seq DESC, status = 'active' DESC, number LIMIT 1"
)
_GROUPS_AT_DOOR = (
    "SELECT g.id, g.calendar FROM holder_groups AS hg "
    "JOIN group_doors AS gd ON gd.group_id = hg.group_id AND gd.door_id = ? "
    "JOIN access_groups AS g ON g.id = hg.group_id WHERE hg.holder_id = ?"
)
_WINDOWS = "SELECT days, start_min, end_min FROM group_windows WHERE group_id = ?"
_CALENDAR_DAYS = "SELECT day, kind FROM calendar_days WHERE calendar = ? AND day IN (?, ?)"


def _date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def days_to_mask(days: Iterable[int]) -> int:
    mask = 0
    for day in days:
        mask |= 1 << day
    return mask


def mask_to_days(mask: int) -> frozenset[int]:
    return frozenset(day for day in range(1, 9) if mask & (1 << day))


def _card(row: tuple[Any, ...]) -> Card:
    return Card(
        number=row[0],
        holder_id=row[1],
        issue_seq=row[2],
        card_class=row[3],
        status=CardStatus(row[4]),
        valid_from=_date(row[5]),
        valid_until=_date(row[6]),
    )


def find_card(conn: sqlite3.Connection, number: str) -> Card | None:
    """By card number, falling back to the chip UID (legacy UID-mode readers report only that)."""
    row = conn.execute(_CARD_BY_NUMBER, (number,)).fetchone()
    if row is None:
        row = conn.execute(_CARD_BY_UID, (number,)).fetchone()
    return None if row is None else _card(row)


def current_card(conn: sqlite3.Connection, holder_id: str) -> Card | None:
    """The card a holder's face is judged on: their newest (docs/rules.md)."""
    row = conn.execute(_CURRENT_CARD, (holder_id,)).fetchone()
    return None if row is None else _card(row)


def _holder(conn: sqlite3.Connection, holder_id: str) -> Holder | None:
    row = conn.execute(_HOLDER, (holder_id,)).fetchone()
    if row is None:
        return None
    return Holder(
        id=row[0],
        name=row[1],
        card_class=row[2],
        status=HolderStatus(row[3]),
        valid_from=_date(row[4]),
        valid_until=_date(row[5]),
        require_face=bool(row[6]),
    )


def load_door_view(
    conn: sqlite3.Connection, number: str, door_id: str, today: date, view_seq: int
) -> DoorView:
    """Everything ``decide()`` needs for one card at one door, read with indexed lookups only."""
    card = find_card(conn, number)
    if card is None:
        return DoorView(view_seq=view_seq)
    return _door_view(conn, card.holder_id, card, door_id=door_id, today=today, view_seq=view_seq)


def load_door_view_for_holder(
    conn: sqlite3.Connection, holder_id: str, door_id: str, today: date, view_seq: int
) -> DoorView:
    """The same view for a recognised face: the holder, their access groups, and their newest
    card (if any), whose standing the rules weigh (a lost one does not stop the face)."""
    card = current_card(conn, holder_id)
    return _door_view(conn, holder_id, card, door_id=door_id, today=today, view_seq=view_seq)


def _door_view(
    conn: sqlite3.Connection,
    holder_id: str,
    card: Card | None,
    *,
    door_id: str,
    today: date,
    view_seq: int,
) -> DoorView:
    holder = _holder(conn, holder_id)
    newest = conn.execute(_NEWEST_ISSUE, (holder_id,)).fetchone()[0]
    groups = []
    calendars: dict[str, Calendar] = {}
    yesterday = (today - timedelta(days=1)).isoformat()
    for group_id, calendar_name in conn.execute(_GROUPS_AT_DOOR, (door_id, holder_id)):
        windows = tuple(
            TimeWindow(mask_to_days(days), start, end)
            for days, start, end in conn.execute(_WINDOWS, (group_id,))
        )
        groups.append(AccessGroup(group_id, frozenset({door_id}), windows, calendar_name))
        if calendar_name and calendar_name not in calendars:
            holidays: set[date] = set()
            workdays: set[date] = set()
            for day, kind in conn.execute(
                _CALENDAR_DAYS, (calendar_name, today.isoformat(), yesterday)
            ):
                (holidays if kind == "holiday" else workdays).add(date.fromisoformat(day))
            calendars[calendar_name] = Calendar(
                calendar_name, frozenset(holidays), frozenset(workdays)
            )
    return DoorView(
        view_seq=view_seq,
        card=card,
        holder=holder,
        newest_issue_seq=newest,
        groups=tuple(groups),
        calendars=tuple(calendars.values()),
    )


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def holder_row(holder: Holder, **extra: Any) -> dict[str, Any]:
    return {
        "id": holder.id,
        "name": holder.name,
        "card_class": holder.card_class,
        "status": str(holder.status),
        "valid_from": _iso(holder.valid_from),
        "valid_until": _iso(holder.valid_until),
        "require_face": int(holder.require_face),
        "spend_only_until": _iso(holder.spend_only_until),
        "services": json.dumps(sorted(holder.services)),
        "canteens": json.dumps(sorted(holder.canteens)),
        "pin_hash": holder.pin_hash,
        **extra,
    }


def card_row(card: Card, **extra: Any) -> dict[str, Any]:
    return {
        "number": card.number,
        "holder_id": card.holder_id,
        "issue_seq": card.issue_seq,
        "card_class": card.card_class,
        "status": str(card.status),
        "valid_from": _iso(card.valid_from),
        "valid_until": _iso(card.valid_until),
        **extra,
    }


def upsert_holders(conn: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
    sqlite_utils.Database(conn).table("holders").upsert_all(rows, pk="id", batch_size=2000)


def upsert_cards(conn: sqlite3.Connection, rows: Iterable[dict[str, Any]]) -> None:
    sqlite_utils.Database(conn).table("cards").upsert_all(rows, pk="number", batch_size=2000)


def set_holder_groups(conn: sqlite3.Connection, holder_id: str, group_ids: Iterable[str]) -> None:
    conn.execute("DELETE FROM holder_groups WHERE holder_id = ?", (holder_id,))
    conn.executemany(
        "INSERT INTO holder_groups (holder_id, group_id) VALUES (?, ?)",
        [(holder_id, group_id) for group_id in group_ids],
    )


def upsert_group(conn: sqlite3.Connection, group: AccessGroup, change_seq: int = 0) -> None:
    """Replace a group with its doors and windows (a group change always sends the whole group)."""
    conn.execute(
        "INSERT INTO access_groups (id, calendar, change_seq) VALUES (?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET calendar = excluded.calendar, "
        "change_seq = excluded.change_seq",
        (group.id, group.calendar, change_seq),
    )
    conn.execute("DELETE FROM group_doors WHERE group_id = ?", (group.id,))
    conn.execute("DELETE FROM group_windows WHERE group_id = ?", (group.id,))
    conn.executemany(
        "INSERT INTO group_doors (door_id, group_id) VALUES (?, ?)",
        [(door, group.id) for door in sorted(group.doors)],
    )
    conn.executemany(
        "INSERT INTO group_windows (group_id, days, start_min, end_min) VALUES (?, ?, ?, ?)",
        [(group.id, days_to_mask(w.days), w.start, w.end) for w in group.windows],
    )


def set_calendar(
    conn: sqlite3.Connection, name: str, holidays: Iterable[date], workdays: Iterable[date]
) -> None:
    rows = [(name, d.isoformat(), "holiday") for d in holidays]
    rows += [(name, d.isoformat(), "workday") for d in workdays]
    conn.executemany(
        "INSERT INTO calendar_days (calendar, day, kind) VALUES (?, ?, ?) "
        "ON CONFLICT (calendar, day) DO UPDATE SET kind = excluded.kind",
        rows,
    )


def upsert_rule(
    conn: sqlite3.Connection, rule_id: str, kind: str, body: dict[str, Any], change_seq: int = 0
) -> None:
    conn.execute(
        "INSERT INTO rules (id, type, body, change_seq) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET type = excluded.type, body = excluded.body, "
        "change_seq = excluded.change_seq",
        (rule_id, kind, json.dumps(body, ensure_ascii=False), change_seq),
    )


def set_purse(
    conn: sqlite3.Connection,
    account: str,
    purse: str,
    balance: int,
    *,
    expires: date | None = None,
    change_seq: int = 0,
) -> None:
    conn.execute(
        "INSERT INTO purses (account, purse, balance, expires, change_seq) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (account, purse) DO UPDATE SET balance = excluded.balance, "
        "expires = excluded.expires, change_seq = excluded.change_seq",
        (account, purse, balance, _iso(expires), change_seq),
    )
