"""From sightings of codes to presentations, shared by every QR reader.

A camera sees a code in every frame it decodes and a scanner repeats a code while it is held in
front of it; the flows want one :class:`QrPresented` per showing, like one ``CardPresented`` per
tap. A sighting of the text already in view only keeps it in view; a code that has not been seen
for ``gone_seconds`` is taken away (:class:`QrRemoved`); a different code replaces the one in
view (removed, then presented).

The driver's thread reports sightings; the removal is worked out by whoever asks for the next
event, from the time of the last sighting, so it comes on time even while the driver's thread is
blocked on a device that went silent.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from drivers.qr.interface import QrEvent, QrPresented, QrRemoved
from models.errors import DriverError

logger = logging.getLogger(__name__)

# Generous: the tap loop takes events every turn; this bounds memory if nothing does.
_CAPACITY = 64
_MIN_WAIT = 0.001


class Presence:
    """Thread-safe: ``seen``/``withdraw`` from the driver, ``next_event`` from the consumer."""

    def __init__(
        self,
        source: str,
        gone_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._gone = gone_seconds
        self._clock = clock
        self._cond = threading.Condition()
        self._events: deque[QrEvent] = deque()
        self._text: str | None = None
        self._last = 0.0
        self._closed = False

    def seen(self, text: str, at: float | None = None, source: str | None = None) -> bool:
        """``text`` was decoded or scanned (at ``at``, monotonic seconds; default now); True when
        this is a new presentation. ``source`` overrides the reader's own in the event."""
        at = self._clock() if at is None else at
        with self._cond:
            if self._closed:
                return False
            self._expire(self._clock())
            if text == self._text:
                self._last = max(self._last, at)
                return False
            if self._text is not None:
                self._put(QrRemoved())
            self._text, self._last = text, at
            self._put(QrPresented(text, source or self.source))
            self._cond.notify_all()
            return True

    def withdraw(self) -> None:
        """The code in view (if any) is gone now, without waiting for ``gone_seconds``."""
        with self._cond:
            if self._text is not None:
                self._text = None
                self._put(QrRemoved())
                self._cond.notify_all()

    def in_view(self) -> str | None:
        with self._cond:
            self._expire(self._clock())
            return self._text

    def next_event(self, timeout: float) -> QrEvent | None:
        deadline = self._clock() + max(timeout, 0.0)
        with self._cond:
            while True:
                if self._closed:
                    raise DriverError(f"{self.source} QR reader is closed")
                now = self._clock()
                self._expire(now)
                if self._events:
                    return self._events.popleft()
                remaining = deadline - now
                if remaining <= 0:
                    return None
                if self._text is not None:
                    remaining = min(remaining, max(self._last + self._gone - now, _MIN_WAIT))
                self._cond.wait(remaining)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._events.clear()
            self._text = None
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def _expire(self, now: float) -> None:
        if self._text is not None and now - self._last >= self._gone:
            self._text = None
            self._put(QrRemoved())

    def _put(self, event: QrEvent) -> None:
        if len(self._events) >= _CAPACITY:
            # The type only: a code's text is a credential and stays out of the log.
            dropped = type(self._events.popleft()).__name__
            logger.warning(
                "%s QR reader: nobody takes its events; dropped a %s", self.source, dropped
            )
        self._events.append(event)
