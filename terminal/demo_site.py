"""The demo site: a few holders of every card class, their cards, groups and a holiday calendar.

Names and numbers are invented. The same data seeds the integration tests' databases.
"""

from datetime import date

from models.cards import Card, CardStatus, Holder
from models.schedule import HOLIDAY, AccessGroup, TimeWindow, parse_hhmm
from terminal.store import Store
from terminal.store.allowlist import (
    card_row,
    holder_row,
    set_calendar,
    set_holder_groups,
    upsert_cards,
    upsert_group,
    upsert_holders,
)

DOOR = "east-gate"
CALENDAR = "cn-2027"
WEEKDAYS = frozenset({1, 2, 3, 4, 5})


def card_number(n: int) -> str:
    """20-digit application serial numbers, as CARD.md puts on the card."""
    return f"3601002026{n:010d}"


def _window(days: frozenset[int], start: str, end: str) -> TimeWindow:
    return TimeWindow(days, parse_hhmm(start), parse_hhmm(end))


GROUPS = (
    AccessGroup(
        "staff",
        frozenset({DOOR}),
        (_window(WEEKDAYS, "07:00", "20:00"), _window(frozenset({6}), "08:00", "12:00")),
        CALENDAR,
    ),
    AccessGroup(
        "leaders",
        frozenset({DOOR}),
        (_window(frozenset(range(1, HOLIDAY + 1)), "00:00", "24:00"),),
        CALENDAR,
    ),
    AccessGroup("contractors", frozenset({DOOR}), (_window(WEEKDAYS, "08:00", "18:00"),), CALENDAR),
)
HOLIDAYS = (date(2027, 1, 1),)

# (holder, groups, cards)
PEOPLE: tuple[tuple[Holder, tuple[str, ...], tuple[Card, ...]], ...] = (
    (
        Holder("H001", "张伟", "gold"),
        ("staff", "leaders"),
        (Card(card_number(1), "H001", 1, "gold"),),
    ),
    (Holder("H002", "李娜", "red"), ("staff",), (Card(card_number(2), "H002", 1, "red"),)),
    (Holder("H003", "王芳", "blue"), ("staff",), (Card(card_number(3), "H003", 1, "blue"),)),
    (Holder("H004", "赵强", "green"), (), (Card(card_number(4), "H004", 1, "green"),)),
    (
        Holder("H005", "陈静", "red"),
        ("staff",),
        (Card(card_number(5), "H005", 1, "red", CardStatus.LOST),),
    ),
    (
        Holder("H006", "刘洋", "temporary", valid_until=date(2026, 11, 22)),
        ("staff",),
        (Card(card_number(6), "H006", 1, "temporary", valid_until=date(2026, 11, 22)),),
    ),
    (
        Holder("H007", "孙磊", "red"),
        ("staff",),
        (
            Card(card_number(7), "H007", 1, "red", CardStatus.REPLACED),
            Card(card_number(17), "H007", 2, "red"),
        ),
    ),
    (
        Holder("H008", "周敏", "temporary", valid_until=date(2027, 6, 30)),
        ("contractors",),
        (Card(card_number(8), "H008", 1, "temporary", valid_until=date(2027, 6, 30)),),
    ),
)


def seed(store: Store) -> None:
    with store.write() as conn:
        for group in GROUPS:
            upsert_group(conn, group)
        set_calendar(conn, CALENDAR, HOLIDAYS, ())
        upsert_holders(conn, [holder_row(holder) for holder, _, _ in PEOPLE])
        upsert_cards(conn, [card_row(card) for _, _, cards in PEOPLE for card in cards])
        for holder, groups, _ in PEOPLE:
            set_holder_groups(conn, holder.id, groups)


def holder_name(holder_id: str | None) -> str:
    for holder, _, _ in PEOPLE:
        if holder.id == holder_id:
            return f"{holder.name} ({holder.card_class})"
    return "—"
