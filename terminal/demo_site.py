"""The demo site: a few holders of every card class, their cards, groups and a holiday calendar.

Names and numbers are invented. The same data seeds the integration tests' databases, for the
gate and for the canteen and shop POS units.
"""

from datetime import date
from zoneinfo import ZoneInfo

from models.cards import Card, CardStatus, Holder, HolderStatus
from models.pin import hash_pin
from models.schedule import HOLIDAY, AccessGroup, TimeWindow, parse_hhmm
from models.wallet import Purse
from terminal.store import Store
from terminal.store.allowlist import (
    card_row,
    holder_row,
    set_calendar,
    set_holder_groups,
    set_purse,
    upsert_cards,
    upsert_group,
    upsert_holders,
    upsert_rule,
)

SITE_TZ = ZoneInfo("Asia/Shanghai")
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

ALL = frozenset({"meal", "shop", "barber"})
CANTEEN = "canteen-1"
SHOP = "shop-1"
DEMO_PIN = "135790"
# A fixed salt keeps the demo site identical on every run; real PIN hashes come from HQ.
_PIN_HASH = hash_pin(DEMO_PIN, b"demo-site-salt")

# (holder, groups, cards)
PEOPLE: tuple[tuple[Holder, tuple[str, ...], tuple[Card, ...]], ...] = (
    (
        Holder("H001", "张伟", "gold", services=ALL, pin_hash=_PIN_HASH),
        ("staff", "leaders"),
        (Card(card_number(1), "H001", 1, "gold"),),
    ),
    (
        Holder("H002", "李娜", "red", services=ALL, pin_hash=_PIN_HASH),
        ("staff",),
        (Card(card_number(2), "H002", 1, "red"),),
    ),
    (
        Holder("H003", "王芳", "blue", services=frozenset({"meal", "shop"})),
        ("staff",),
        (Card(card_number(3), "H003", 1, "blue"),),
    ),
    (
        Holder("H004", "赵强", "green", services=frozenset({"meal", "barber"})),
        (),
        (Card(card_number(4), "H004", 1, "green"),),
    ),
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
    (
        # An official-reception card (公务接待卡), batch-issued to a unit: meals in canteen-2 only.
        Holder(
            "H009",
            "接待卡",
            "blue",
            services=frozenset({"meal"}),
            canteens=frozenset({"canteen-2"}),
        ),
        (),
        (Card(card_number(9), "H009", 1, "blue"),),
    ),
    (
        # Left the unit: may spend the remaining cash until the deadline, no subsidy, no doors.
        Holder(
            "H010",
            "吴刚",
            "red",
            HolderStatus.SPEND_ONLY,
            services=ALL,
            spend_only_until=date(2027, 5, 31),
        ),
        (),
        (Card(card_number(10), "H010", 1, "red"),),
    ),
)

PURSES: tuple[tuple[str, Purse, int], ...] = (
    ("H001", Purse.CASH, 50_000),
    ("H001", Purse.MEAL_SUBSIDY, 20_000),
    ("H002", Purse.CASH, 3_000),
    ("H002", Purse.MEAL_SUBSIDY, 1_000),
    ("H002", Purse.WORK_MEALS, 2),
    ("H003", Purse.CASH, 8_000),
    ("H004", Purse.CASH, 20_000),
    ("H004", Purse.BARBER_SUBSIDY, 5_000),
    ("H009", Purse.CASH, 100_000),
    ("H010", Purse.CASH, 6_000),
    ("H010", Purse.MEAL_SUBSIDY, 5_000),
)

RULES: tuple[tuple[str, str, dict[str, object]], ...] = (
    (
        "mp-c1-breakfast",
        "meal_period",
        {"canteen": CANTEEN, "name": "breakfast", "from": "06:30", "to": "09:00"},
    ),
    (
        "mp-c1-lunch",
        "meal_period",
        {"canteen": CANTEEN, "name": "lunch", "from": "11:00", "to": "13:30"},
    ),
    (
        "mp-c1-dinner",
        "meal_period",
        {"canteen": CANTEEN, "name": "dinner", "from": "17:00", "to": "19:00"},
    ),
    (
        "pr-c1-breakfast",
        "price",
        {
            "canteen": CANTEEN,
            "period": "breakfast",
            "mode": "fixed",
            "by_class": {"temporary": 800},
            "default": 300,
        },
    ),
    ("pr-c1-lunch", "price", {"canteen": CANTEEN, "period": "lunch", "mode": "entered"}),
    (
        "pr-c1-dinner",
        "price",
        {"canteen": CANTEEN, "period": "dinner", "mode": "fixed", "default": 500},
    ),
    ("lim-gold", "limit", {"class": "gold", "per_tx": 50_000, "pin_free": 10_000}),
    (
        "lim-red",
        "limit",
        {
            "class": "red",
            "per_tx": 20_000,
            "per_day": 50_000,
            "pin_free": 5_000,
            "offline_per_card_day": 10_000,
        },
    ),
    ("sup-h001", "supervisor", {"holder_id": "H001", "merchants": [CANTEEN, SHOP]}),
)


def seed(store: Store) -> None:
    with store.write() as conn:
        for rule_id, kind, body in RULES:
            upsert_rule(conn, rule_id, kind, body)
        for account, purse, balance in PURSES:
            set_purse(conn, account, str(purse), balance)
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
