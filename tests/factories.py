"""Builders for domain objects with sensible defaults, so each test states only what matters."""

from datetime import date, datetime
from zoneinfo import ZoneInfo

from models import (
    AccessGroup,
    Calendar,
    Card,
    CardStatus,
    DoorRequest,
    DoorView,
    Genuineness,
    Holder,
    PresentedCard,
    TimeWindow,
)
from models.pos import Limits, MealPeriod, Merchant, PosPolicy, PosRequest, PosView, Pricing
from models.schedule import parse_hhmm
from models.wallet import Purse, PurseState, Service

TZ = ZoneInfo("Asia/Shanghai")
DOOR = "east-gate"
NUMBER = "36010020260000000001"
# Monday 2026-11-23, 09:00 site time.
MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=TZ)


def at(year: int, month: int, day: int, hhmm: str) -> datetime:
    return datetime(year, month, day, parse_hhmm(hhmm) // 60, parse_hhmm(hhmm) % 60, tzinfo=TZ)


def window(days: set[int] | frozenset[int], start: str, end: str) -> TimeWindow:
    return TimeWindow(frozenset(days), parse_hhmm(start), parse_hhmm(end))


OFFICE_HOURS = window({1, 2, 3, 4, 5}, "07:00", "20:00")


def group(
    *windows: TimeWindow, doors: tuple[str, ...] = (DOOR,), calendar: str = "cn"
) -> AccessGroup:
    return AccessGroup("staff", frozenset(doors), windows or (OFFICE_HOURS,), calendar)


def card(
    status: CardStatus = CardStatus.ACTIVE,
    issue_seq: int = 1,
    valid_from: date | None = None,
    valid_until: date | None = None,
    number: str = NUMBER,
) -> Card:
    return Card(number, "H1", issue_seq, "red", status, valid_from, valid_until)


def holder(**fields: object) -> Holder:
    values: dict[str, object] = {"id": "H1", "name": "李娜", "card_class": "red"} | fields
    return Holder(**values)  # type: ignore[arg-type]


def presented(number: str = NUMBER, issue_seq: int | None = 1, **fields: object) -> PresentedCard:
    return PresentedCard(number, Genuineness.GENUINE, issue_seq, **fields)  # type: ignore[arg-type]


def view(
    card_: Card | None = None,
    holder_: Holder | None = None,
    groups: tuple[AccessGroup, ...] | None = None,
    calendars: tuple[Calendar, ...] = (),
    newest_issue_seq: int | None = None,
) -> DoorView:
    card_ = card_ or card()
    return DoorView(
        view_seq=7,
        card=card_,
        holder=holder_ or holder(),
        newest_issue_seq=newest_issue_seq if newest_issue_seq is not None else card_.issue_seq,
        groups=(group(),) if groups is None else groups,
        calendars=calendars,
    )


def request(credential: PresentedCard | None = None, door: str = DOOR) -> DoorRequest:
    return DoorRequest(credential or presented(), door, "in")


# --- POS -----------------------------------------------------------------------------------------


ALL_SERVICES = frozenset({"meal", "shop", "barber"})
LUNCH = MealPeriod("lunch", window({1, 2, 3, 4, 5, 6, 7}, "11:00", "13:30"))
BREAKFAST = MealPeriod("breakfast", window({1, 2, 3, 4, 5, 6, 7}, "06:30", "09:00"))
CANTEEN = Merchant(
    "canteen-1",
    Service.MEAL,
    (BREAKFAST, LUNCH),
    (
        ("breakfast", Pricing("fixed", (("gold", 500), ("red", 500)), default=800)),
        ("lunch", Pricing("entered")),
    ),
    supervisors=frozenset({"SUP"}),
)
SHOP = Merchant("shop-1", Service.SHOP, supervisors=frozenset({"SUP"}))
BARBER = Merchant("barber-1", Service.BARBER)
MONDAY_8 = at(2026, 11, 23, "08:00")
MONDAY_12 = at(2026, 11, 23, "12:00")


def pos_holder(**fields: object) -> Holder:
    return holder(**({"services": ALL_SERVICES} | fields))


def purses(
    cash: int = 10_000, meal: int = 0, barber: int = 0, work_meals: int = 0
) -> tuple[PurseState, ...]:
    return (
        PurseState(Purse.CASH, cash),
        PurseState(Purse.MEAL_SUBSIDY, meal),
        PurseState(Purse.BARBER_SUBSIDY, barber),
        PurseState(Purse.WORK_MEALS, work_meals),
    )


def pos_view(merchant: Merchant = CANTEEN, **fields: object) -> PosView:
    values: dict[str, object] = {
        "view_seq": 7,
        "merchant": merchant,
        "policy": PosPolicy(),
        "card": card(),
        "holder": pos_holder(),
        "newest_issue_seq": 1,
        "limits": Limits(),
        "purses": purses(),
    } | fields
    return PosView(**values)  # type: ignore[arg-type]


def pos_request(amount: int | None = None, **fields: object) -> PosRequest:
    return PosRequest(presented(), entered_amount=amount, **fields)  # type: ignore[arg-type]


def sim_door_config(state: object, diag_socket: object) -> dict[str, object]:
    """A door terminal on simulated hardware with faces off, as config data."""
    return {
        "terminal": {"id": "gate-01", "site": "demo", "state_dir": str(state)},
        "diag": {"socket": str(diag_socket)},
        "reader": {"driver": "sim"},
        "door": {"id": "east-gate"},
        "gate": {"driver": "sim"},
    }


class InProcessSam:
    """An emulated PSAM (anything with ``process(apdu)``) as a key store's transport, no pcscd."""

    def __init__(self, sam: object) -> None:
        self.sam = sam

    def transmit(self, apdu: bytes) -> bytes:
        answer = self.sam.process(apdu)  # type: ignore[attr-defined]
        assert answer is not None
        return bytes(answer)
