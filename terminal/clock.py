"""Wall time and monotonic time, behind a seam so the demo and tests can set the hour."""

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from models import timefmt

# A wall clock this far behind the newest journal record was set back, not slewed by NTP; the
# same margin bounds how far it may stand from HQ's clock and still be vouched for by a head.
CLOCK_STEP_TOLERANCE_S = 60


class Clock(Protocol):
    def now(self) -> datetime:
        """Current wall time, timezone-aware."""
        ...

    def monotonic_ns(self) -> int: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()


class SetClock:
    """A clock that stands where it was last set, for narrated scenarios and tests.

    :meth:`set` moves the wall clock only, as a clock step does (NTP, an operator); deadlines
    run on monotonic time, which goes on as real time and moves ahead with :meth:`advance`, so a
    test can let a 30-second prompt expire without waiting 30 seconds.
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("SetClock needs a timezone-aware start")
        self._now = start
        self._ahead_ns = 0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta
            self._ahead_ns += max(0, int(delta.total_seconds() * 1e9))

    def monotonic_ns(self) -> int:
        with self._lock:
            return time.monotonic_ns() + self._ahead_ns


def rfc3339(moment: datetime) -> str:
    """The terminal's records and events: UTC with millisecond precision and a Z."""
    return timefmt.rfc3339(moment, "milliseconds")
