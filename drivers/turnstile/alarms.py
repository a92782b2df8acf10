"""Which board alarms become security events, and which are only counted.

The serial line is not authenticated: anything that can write to it (a spoofer, a chattering
sensor, a firmware stuck in a loop) can send alarm frames with fresh seqs as fast as the line
allows, and each would otherwise be journalled and uploaded. The rule is the protocol doc's
"Alarm repeats and floods". Pure and clock-free (``now`` is ``time.monotonic()`` from the
caller), so it is tested without a port.
"""

import logging
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

logger = logging.getLogger(__name__)

REPEAT_WINDOW = 30.0  # seconds of quiet after which the same kind is a new incident
BUDGET = 5  # new incidents a minute; a real break-in raises at most the three kinds
BUDGET_PER = 60.0


class SecurityKind(StrEnum):
    DOOR_FORCED = "door_forced"
    HELD_OPEN = "held_open"
    TAMPER = "tamper"
    ALARM_FLOOD = "alarm_flood"  # stands for every alarm beyond the budget until it is quiet


@dataclass(slots=True)
class _Incident:
    started: float
    last: float
    repeats: int = 0


@dataclass(frozen=True, slots=True)
class Ended:
    """Something the caller should log: an incident with repeats, or a flood, is over."""

    kind: SecurityKind
    copies: int  # repeats folded into the incident, or alarms the flood stood for
    seconds: float
    by_kind: dict[str, int]


class AlarmLimiter:
    """Folds repeats of an alarm into its first event and summarises a burst as one flood.

    Not thread-safe: the gate calls it under its own lock.
    """

    def __init__(
        self, repeat_window: float = REPEAT_WINDOW, budget: int = BUDGET, per: float = BUDGET_PER
    ) -> None:
        self._window = repeat_window
        self._budget = budget
        self._per = per
        self._open: dict[SecurityKind, _Incident] = {}
        self._set_on_board: set[SecurityKind] = set()
        self._recent: deque[float] = deque()  # when the incidents of the last ``per`` were raised
        self._flood_started: float | None = None
        self._flood_last = 0.0
        self._flood_now: Counter[str] = Counter()
        self._raised: Counter[str] = Counter()
        self._repeats: Counter[str] = Counter()
        self._flooded: Counter[str] = Counter()
        self._ended: list[Ended] = []

    def offer(self, kind: SecurityKind, now: float) -> SecurityKind | None:
        """What to raise for one alarm frame: ``kind``, ``ALARM_FLOOD`` or nothing."""
        self._close(now)
        incident = self._open.get(kind)
        if incident is not None:
            incident.repeats += 1
            incident.last = now
            self._repeats[kind.value] += 1
            return None
        self._open[kind] = _Incident(now, now)
        while self._recent and now - self._recent[0] >= self._per:
            self._recent.popleft()
        if len(self._recent) < self._budget:
            self._recent.append(now)
            self._raised[kind.value] += 1
            return kind
        self._flooded[kind.value] += 1
        self._flood_now[kind.value] += 1
        self._flood_last = now
        if self._flood_started is None:
            self._flood_started = now
            self._raised[SecurityKind.ALARM_FLOOD.value] += 1
            return SecurityKind.ALARM_FLOOD
        return None

    def board_alarms(self, kinds: Iterable[SecurityKind], now: float) -> None:
        """The alarm bits of the board's latest STATUS: an alarm still set is still one incident."""
        self._set_on_board = set(kinds)
        for kind in self._set_on_board:
            if kind in self._open:
                self._open[kind].last = now

    def sweep(self, now: float) -> list[Ended]:
        """Close what has gone quiet; returns (and forgets) what ended since the last sweep."""
        self._close(now)
        ended, self._ended = self._ended, []
        return ended

    def _close(self, now: float) -> None:
        for kind, incident in list(self._open.items()):
            if kind not in self._set_on_board and now - incident.last >= self._window:
                del self._open[kind]
                if incident.repeats:
                    self._ended.append(
                        Ended(
                            kind,
                            incident.repeats,
                            incident.last - incident.started,
                            {kind.value: incident.repeats},
                        )
                    )
        if self._flood_started is not None and now - self._flood_last >= self._per:
            self._ended.append(
                Ended(
                    SecurityKind.ALARM_FLOOD,
                    sum(self._flood_now.values()),
                    self._flood_last - self._flood_started,
                    dict(sorted(self._flood_now.items())),
                )
            )
            self._flood_started = None
            self._flood_now.clear()

    def counts(self) -> dict[str, Any]:
        """Since start: events raised, repeats folded and alarms a flood stood for, by kind."""
        return {
            "raised": dict(sorted(self._raised.items())),
            "repeats": dict(sorted(self._repeats.items())),
            "flooded": dict(sorted(self._flooded.items())),
            "flooding": self._flood_started is not None,
        }


def log_ended(what: Ended) -> None:
    """The warning an ended incident with repeats, or an ended flood, is logged with."""
    counts = ", ".join(f"{k} {v}" for k, v in what.by_kind.items())
    if what.kind is SecurityKind.ALARM_FLOOD:
        logger.warning(
            "turnstile alarm flood over after %.0fs: %d alarms were not raised one by one (%s)",
            what.seconds,
            what.copies,
            counts,
            extra={"alarm": what.kind.value, "counts": what.by_kind},
        )
    else:
        logger.warning(
            "turnstile alarm %s over: %d repeats in %.0fs were one event",
            what.kind,
            what.copies,
            what.seconds,
            extra={"alarm": what.kind.value, "repeats": what.copies},
        )
