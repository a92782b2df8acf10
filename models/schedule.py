"""Weekly time windows, holidays and make-up working days (调休).

Day numbers follow ISO: 1 = Monday … 7 = Sunday. :data:`HOLIDAY` (8) is a pseudo-day: on a
public holiday only windows that list day 8 apply, whatever the weekday. A make-up working day
(a weekend date the government declares a working day) follows Monday's windows, i.e. it is a
normal working day.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

HOLIDAY = 8
MAKEUP_WORKDAY_AS = 1
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class Calendar:
    """The holiday and make-up-workday dates of one named calendar.

    A view needs only the dates around "now", so a store may load a partial calendar.
    """

    name: str
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)

    def day_kind(self, day: date) -> int:
        """The day number whose windows apply on ``day`` (1..7, or :data:`HOLIDAY`)."""
        if day in self.holidays:
            return HOLIDAY
        if day in self.workdays:
            return MAKEUP_WORKDAY_AS
        return day.isoweekday()


NO_CALENDAR = Calendar(name="")


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Open from ``start`` to ``end`` (minutes after midnight, end exclusive) on ``days``.

    ``start > end`` is an overnight window (22:00–06:00): it opens on a listed day and runs into
    the next morning, whatever kind the next day is.
    """

    days: frozenset[int]
    start: int
    end: int

    def __post_init__(self) -> None:
        if not self.days or not self.days <= frozenset(range(1, HOLIDAY + 1)):
            raise ValueError(f"window days must be within 1..8, got {sorted(self.days)}")
        if not (0 <= self.start < MINUTES_PER_DAY and 0 <= self.end <= MINUTES_PER_DAY):
            raise ValueError("window times must be within 00:00..24:00")
        if self.start == self.end:
            raise ValueError("an empty window (start == end) admits nobody; leave it out")

    @property
    def overnight(self) -> bool:
        return self.start > self.end

    def admits(self, today_kind: int, yesterday_kind: int, minute: int) -> bool:
        if not self.overnight:
            return today_kind in self.days and self.start <= minute < self.end
        if today_kind in self.days and minute >= self.start:
            return True
        return yesterday_kind in self.days and minute < self.end


def parse_hhmm(text: str) -> int:
    """``"07:30"`` -> 450; ``"24:00"`` is allowed as an end of day. Raises ``ValueError``."""
    hours, sep, minutes = text.partition(":")
    if not sep or len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"time must be HH:MM, got {text!r}")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > MINUTES_PER_DAY:
        raise ValueError(f"time out of range: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class AccessGroup:
    """Doors a set of holders may pass, and when."""

    id: str
    doors: frozenset[str]
    windows: tuple[TimeWindow, ...]
    calendar: str = ""

    def open_at(self, now: datetime, calendars: Iterable[Calendar]) -> bool:
        calendar = next((c for c in calendars if c.name == self.calendar), NO_CALENDAR)
        today = now.date()
        today_kind = calendar.day_kind(today)
        yesterday_kind = calendar.day_kind(today - timedelta(days=1))
        minute = now.hour * 60 + now.minute
        return any(w.admits(today_kind, yesterday_kind, minute) for w in self.windows)


def since(earlier: datetime, now: datetime) -> timedelta:
    """Time from a journalled moment to ``now``, never negative.

    The journal orders what happened: a record stamped after ``now`` was still made before it,
    so the wall clock was set back since. How long ago it was is then unknown, and the rules
    that count time since the last record (anti-passback, the duplicate-tap guard) take it as
    just now rather than be fooled by the step.
    """
    return max(now - earlier, timedelta(0))
