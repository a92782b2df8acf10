"""Face-only passage: a thread that keeps identifying whoever stands at the camera (1:N).

The tap loop serves the card reader; this thread watches the camera at the same time and hands
the loop what it saw (``deliver_to``), one event per person rather than one per frame: a recognised
holder (who passed liveness), a recognised face that failed liveness, a face nobody is enrolled
for, or that the person left. A holder still standing at the camera after a passage is not
admitted again until they leave or ``repeat_seconds`` pass without them, just as a card left on
the reader is one tap.

While a card + face check runs, the loop pauses this thread: both would read the same camera,
and the 1:1 check should have the CPU to itself.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from drivers.camera.interface import Frame
from models.cards import FaceCredential
from terminal.faces.evidence import keep_still
from terminal.faces.verifier import FaceOutcome, FaceResult, FaceVerifier
from terminal.store.faces import FaceStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FaceSeen:
    """A holder recognised (and live, when liveness is required): present them as a credential."""

    credential: FaceCredential


@dataclass(frozen=True, slots=True)
class FaceSpoofed:
    """A face that matched a holder failed the liveness check: a photo or a screen, probably."""

    holder_id: str
    score_milli: int | None
    evidence: Frame | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class FaceNotRecognised:
    """A face, but nobody to admit: unknown, ambiguous, or face-only passage unavailable."""

    outcome: FaceOutcome


@dataclass(frozen=True, slots=True)
class FaceGone:
    """Nobody at the camera any more: the next face is a new presentation."""


WatchEvent = FaceSeen | FaceSpoofed | FaceNotRecognised | FaceGone

# Outcomes after which identifying again at once would only spin: wait before the next try.
_UNAVAILABLE = frozenset(
    {FaceOutcome.CAMERA_FAULT, FaceOutcome.GALLERY_TOO_LARGE, FaceOutcome.LIVENESS_UNAVAILABLE}
)


def _milli(score: float | None) -> int | None:
    return None if score is None else round(score * 1000)


class FaceWatch:
    def __init__(
        self,
        verifier: FaceVerifier,
        faces: FaceStore,
        *,
        seconds: float,
        repeat_seconds: float,
        retention: timedelta,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.verifier = verifier
        self.faces = faces
        self.seconds = seconds
        self.repeat_seconds = repeat_seconds
        self.retention = retention
        self.clock = clock
        self.events: queue.Queue[WatchEvent] = queue.Queue(maxsize=32)
        self._emit: Callable[[WatchEvent], None] = self._put
        self._stop = threading.Event()
        self._running = threading.Event()  # cleared while paused
        self._running.set()
        self._last: tuple[str, float] | None = None  # what was last told, and when
        self._thread: threading.Thread | None = None

    def deliver_to(self, emit: Callable[[WatchEvent], None]) -> None:
        """Send events to ``emit`` (the tap loop's inbox, which registers itself as it is built)
        instead of this watch's own queue (``take``, for tests and the demo)."""
        self._emit = emit

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="face-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        if self._thread is not None:
            self._thread.join(self.seconds + 2)

    @contextmanager
    def paused(self) -> Iterator[None]:
        self._running.clear()
        try:
            yield
        finally:
            self._running.set()

    def take(self) -> WatchEvent | None:
        try:
            return self.events.get_nowait()
        except queue.Empty:
            return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._running.wait()
            if self._stop.is_set():
                return
            try:
                result = self.verifier.identify(self.seconds)
            except Exception:
                # The thread must outlive one bad frame or encoder error; the gate still works
                # by card meanwhile.
                logger.exception("face identification failed")
                self._stop.wait(1.0)
                continue
            if not self._running.is_set():
                continue  # a card + face check started meanwhile: this result is stale
            self.observe(result)
            if result.outcome in _UNAVAILABLE:
                self._stop.wait(1.0)

    def observe(self, result: FaceResult) -> None:
        """Turn one identification result into at most one event for the flow."""
        outcome = result.outcome
        if outcome is FaceOutcome.NO_FACE:
            if self._last is not None:
                self._last = None
                self._emit(FaceGone())
            return
        if outcome is FaceOutcome.MATCH and result.holder_id is not None:
            key = f"match:{result.holder_id}"
            event: WatchEvent = FaceSeen(
                FaceCredential(result.holder_id, _milli(result.score) or 0)
            )
        elif outcome is FaceOutcome.NOT_LIVE and result.holder_id is not None:
            key = f"spoof:{result.holder_id}"
            event = FaceSpoofed(result.holder_id, _milli(result.score), result.evidence)
        else:
            key = str(outcome)
            event = FaceNotRecognised(outcome)
            if outcome in _UNAVAILABLE and (self._last is None or self._last[0] != key):
                logger.warning("face-only passage unavailable: %s", outcome)
        now = self.clock()
        if self._last is not None and self._last[0] == key:
            repeat = now - self._last[1] < self.repeat_seconds
            # Still standing there: keep suppressing for as long as they stay.
            self._last = (key, now)
            if repeat:
                return
        self._last = (key, now)
        self._emit(event)

    def _put(self, event: WatchEvent) -> None:
        try:
            self.events.put_nowait(event)
        except queue.Full:
            logger.warning("face events not taken by the door flow: dropped %s", event)

    def keep_evidence(self, event: FaceSpoofed, *, tx_seq: int, at: datetime) -> None:
        """The frame that failed liveness, as a still of the security event, if configured."""
        keep_still(
            self.faces,
            event.evidence,
            kind="face_spoof",
            at=at,
            retention=self.retention,
            holder_id=event.holder_id,
            tx_seq=tx_seq,
        )
