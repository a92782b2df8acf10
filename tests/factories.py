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
from models.schedule import parse_hhmm

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
