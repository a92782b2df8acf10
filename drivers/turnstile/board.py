"""Serial turnstile/relay board behind the :class:`~drivers.interfaces.Gate` interface.

Layers: a pyserial port (anything ``serial.serial_for_url`` opens: ``/dev/ttyUSB0``, a udev
``/dev/serial/by-id/...`` link, ``socket://``, ``loop://``, ``spy://``) -> the pure
:mod:`drivers.turnstile.codec` -> :class:`SerialGate`. The protocol is
``docs/turnstile-protocol.md``.

Threads. Each gate runs one reader thread that owns the port: it opens it, reads and decodes
bytes, acknowledges board events, polls STATUS every ``status_interval_seconds`` (the board's
heartbeat) and, when the port fails (USB adapter unplugged, board powered off), closes it and
reopens it with capped exponential backoff; the delay only resets once the board has answered,
so a port that opens and dies at once never becomes a tight loop. The caller's thread (the door
flow) writes OPEN and MODE frames under a write lock and waits on a condition for the reader to
file the ack or the passage; when the board answers again after a reconnect or a silence, a
short-lived thread sends the remembered mode again (the reader cannot wait for an ack it has to
read itself).
pyserial's ``serial.threaded.ReaderThread`` is not used: it stops for good at the first read
error, and this gate must outlive an unplugged adapter.
"""

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, TypeVar

import serial

from drivers.interfaces import Health, PassageOutcome
from drivers.turnstile.alarms import AlarmLimiter, SecurityKind, log_ended
from drivers.turnstile.codec import (
    Alarm,
    BoardEvent,
    Decoder,
    Direction,
    Discarded,
    DoorForced,
    EventAck,
    GateMode,
    HeldOpen,
    Message,
    ModeAck,
    ModeRequest,
    ModeResult,
    OpenAck,
    OpenRequest,
    OpenResult,
    Passage,
    StatusReply,
    StatusRequest,
    Tamper,
    encode,
)
from drivers.turnstile.linecount import RECENT_S, BadFrames
from drivers.turnstile.settings import FIRST_BACKOFF, PortOpener, SerialGateSettings, SerialPort
from models.errors import DriverError

__all__ = ["SecurityEvent", "SecurityKind", "SerialGate", "SerialGateSettings", "open_port"]

logger = logging.getLogger(__name__)

_READ_TIMEOUT = 0.05  # how long one read blocks; bounds how late the reader notices close()
_DEDUPE_SECONDS = 5.0  # longer than the board's whole repeat schedule for one event
_MAX_SECURITY_EVENTS = 1000
_JOIN_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """An alarm the board raised, kept until the flow takes it to journal it.

    ``monotonic`` is when it arrived (``time.monotonic()``); the flow stamps wall time with its
    own clock, which knows about clock jumps.
    """

    kind: SecurityKind
    board_seq: int
    monotonic: float


_SECURITY_KINDS: dict[type[BoardEvent], SecurityKind] = {
    DoorForced: SecurityKind.DOOR_FORCED,
    HeldOpen: SecurityKind.HELD_OPEN,
    Tamper: SecurityKind.TAMPER,
}
_ALARM_BITS = {
    Alarm.FORCED: SecurityKind.DOOR_FORCED,
    Alarm.HELD_OPEN: SecurityKind.HELD_OPEN,
    Alarm.TAMPER: SecurityKind.TAMPER,
}
_DIRECTIONS: dict[str | None, Direction] = {
    None: Direction.EITHER,
    "none": Direction.EITHER,
    "in": Direction.IN,
    "out": Direction.OUT,
}
_MODES = {mode.name.lower(): mode for mode in GateMode}
_Ack = TypeVar("_Ack", OpenAck, ModeAck)


def open_port(settings: SerialGateSettings) -> SerialPort:
    # exclusive: a second daemon (or a technician's minicom) on the same adapter would steal
    # half the frames; flock makes that fail loudly instead.
    return serial.serial_for_url(
        settings.port,
        baudrate=settings.baudrate,
        timeout=_READ_TIMEOUT,
        write_timeout=settings.write_timeout_seconds,
        exclusive=True,
    )


@dataclass(slots=True)
class _Opening:
    seq: int
    direction: Direction
    passed: bool = False
    lost: bool = False  # the port failed while it was in progress: the outcome is unknown


class SerialGate:
    """A turnstile driven by a relay/controller board over a serial line."""

    def __init__(
        self,
        settings: SerialGateSettings,
        opener: PortOpener = open_port,
        alarms: AlarmLimiter | None = None,
    ) -> None:
        self._settings = settings
        self._opener = opener
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._port: SerialPort | None = None
        self._closed = False
        self._state = "connecting"
        self._problem = ""
        self._last_rx: float | None = None
        self._status: StatusReply | None = None
        self._seq = 0
        self._poll_seq = 0
        self._awaiting: dict[int, type[OpenAck] | type[ModeAck]] = {}
        self._acks: dict[int, OpenAck | ModeAck] = {}
        self._opening: _Opening | None = None
        self._security: deque[SecurityEvent] = deque(maxlen=_MAX_SECURITY_EVENTS)
        self._seen: dict[tuple[int, int, bytes], float] = {}
        self._bad = BadFrames()
        self._limiter = alarms or AlarmLimiter()
        self._mode_lock = threading.Lock()  # one MODE exchange at a time, a caller's or a re-send
        self._wanted: GateMode | None = None  # re-sent whenever the board comes back
        self._confirmed: GateMode | None = None  # what the board acknowledged on this link
        self._restorer: threading.Thread | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"turnstile-{settings.port}", daemon=True
        )
        self._thread.start()

    # -- the Gate interface --------------------------------------------------------------------

    def open(self, direction: str | None, seconds: float) -> None:
        try:
            code = _DIRECTIONS[direction]
        except KeyError:
            raise ValueError(f"direction {direction!r} is not 'in', 'out' or None") from None
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"open time {seconds} s is not a positive number")
        units = min(max(round(seconds * 10), 1), 0xFFFF)
        with self._cond:
            if self._closed:
                raise DriverError("turnstile gate is closed")
            if self._confirmed is GateMode.FREE:
                # The board already holds the gate released and would ignore an OPEN; with no
                # opening, wait_passage returns TIMEOUT at once (free passages carry seq 0).
                self._opening = None
                logger.debug("turnstile: free mode, open() sends nothing")
                return
            seq = self._next_seq()
            # Registered before sending: the reader may file the passage before this thread
            # even wakes up for the ack.
            opening = _Opening(seq, code)
            self._opening = opening
            self._awaiting[seq] = OpenAck
        try:
            ack = self._exchange(seq, encode(OpenRequest(seq, code, units)), "OPEN", OpenAck)
            if ack.result is not OpenResult.ACCEPTED:
                raise DriverError(f"turnstile board refused to open: {ack.result.name.lower()}")
        except DriverError:
            with self._cond:
                if self._opening is opening:
                    self._opening = None
            raise
        logger.info(
            "turnstile released: seq=%d direction=%s window=%.1fs",
            seq,
            code.name.lower(),
            units / 10,
        )

    def set_mode(self, mode: str) -> None:
        """Put the board in ``normal``, ``free`` or ``locked`` mode (the protocol doc's "Modes").

        The mode is remembered and sent again whenever the board answers after a reconnect or a
        silence, since a board that restarted is back in normal. While the board has confirmed
        ``free``, :meth:`open` sends nothing. ``DriverError`` when the board refuses (the
        remembered mode stays the previous one) or does not answer (the new one is kept, so it
        reaches the board once it answers again).
        """
        try:
            wanted = _MODES[mode]
        except KeyError:
            raise ValueError(f"mode {mode!r} is not 'normal', 'free' or 'locked'") from None
        with self._mode_lock:
            with self._cond:
                if self._closed:
                    raise DriverError("turnstile gate is closed")
                previous, self._wanted = self._wanted, wanted
            if self._send_mode(wanted) is not ModeResult.ACCEPTED:
                with self._cond:
                    self._wanted = previous
                raise DriverError(f"turnstile board refused {mode} mode")
        logger.warning("turnstile mode %s", wanted.name.lower())

    def wait_passage(self, timeout: float) -> PassageOutcome:
        with self._cond:
            opening = self._opening
            if opening is None:
                return PassageOutcome.TIMEOUT
            self._cond.wait_for(
                lambda: opening.passed or self._closed,
                max(timeout, 0.0) + self._settings.passage_grace_seconds,
            )
            if self._opening is opening:
                # Closing the opening here is what makes a late PASSAGE for it harmless.
                self._opening = None
        if opening.passed:
            return PassageOutcome.PASSED
        if opening.lost:
            raise DriverError("turnstile board was lost during the opening; passage unknown")
        if self._closed:
            raise DriverError("turnstile gate was closed during the opening")
        return PassageOutcome.TIMEOUT

    def health(self) -> Health:
        with self._cond:
            if self._closed:
                return Health(ok=False, state="closed")
            if self._port is None:
                return Health(ok=False, state=self._state, detail=self._problem)
            if self._last_rx is None:
                return Health(ok=False, state="connecting", detail="port open, board not heard yet")
            silent = time.monotonic() - self._last_rx
            if silent > self._settings.silence_timeout_seconds:
                return Health(ok=False, state="silent", detail=f"no valid frame for {silent:.1f}s")
            return Health(ok=True, state="ok", detail=self._describe())

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._stop.set()
        for thread in (self._thread, self._restorer):
            if thread is not None:
                thread.join(_JOIN_SECONDS)
                if thread.is_alive():
                    logger.warning("%s did not stop within %.0fs", thread.name, _JOIN_SECONDS)

    # -- beyond the interface ------------------------------------------------------------------

    def security_events(self, timeout: float = 0.0) -> list[SecurityEvent]:
        """Take the alarms raised so far, waiting up to ``timeout`` seconds for the first."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._security) or self._closed, timeout)
            taken = list(self._security)
            self._security.clear()
            ended = self._limiter.sweep(time.monotonic())
        for what in ended:
            log_ended(what)
        return taken

    def alarms(self) -> list[str]:
        """The Gate interface's view of :meth:`security_events`: kinds only, never waiting."""
        return [str(event.kind) for event in self.security_events(0.0)]

    def last_status(self) -> StatusReply | None:
        """The board's latest STATUS answer (door sensor, counters, alarms), for diagnostics."""
        with self._cond:
            return self._status

    def link_counters(self) -> dict[str, Any]:
        """Bad frames (total, recent, by reason) and what became of the alarms, for diagnostics."""
        with self._cond:
            now = time.monotonic()
            return self._bad.counts(now) | {"alarms": self._limiter.counts()}

    # -- caller side ---------------------------------------------------------------------------

    def _next_seq(self) -> int:
        # 1..255: seq 0 is reserved for "no opening" in PASSAGE events.
        self._seq = self._seq % 255 + 1
        return self._seq

    def _exchange(self, seq: int, frame: bytes, what: str, kind: type[_Ack]) -> _Ack:
        """Send a request (its seq already in ``_awaiting``) until its ack arrives.

        The same frame every time, so a board that acted but whose ack was lost answers again
        instead of acting twice. ``DriverError`` after ``retries`` repeats without an ack.
        """
        attempts = self._settings.retries + 1
        try:
            for attempt in range(1, attempts + 1):
                self._send(frame, what)
                with self._cond:
                    self._cond.wait_for(
                        lambda: seq in self._acks or self._closed,
                        self._settings.ack_timeout_seconds,
                    )
                    ack = self._acks.pop(seq, None)
                if isinstance(ack, kind):
                    return ack
                if self._closed:
                    break
                logger.warning(
                    "turnstile: no ack for %s seq=%d (attempt %d of %d)",
                    what,
                    seq,
                    attempt,
                    attempts,
                )
        finally:
            with self._cond:
                self._awaiting.pop(seq, None)
                self._acks.pop(seq, None)
                problem = self._problem
        why = f"; port: {problem}" if problem else ""
        raise DriverError(
            f"turnstile board did not acknowledge {what} after {attempts} attempts{why}"
        )

    def _send_mode(self, mode: GateMode) -> ModeResult:
        with self._cond:
            seq = self._next_seq()
            self._awaiting[seq] = ModeAck
            before, self._confirmed = self._confirmed, None  # unknown until the board answers
        ack = self._exchange(seq, encode(ModeRequest(seq, mode)), "MODE", ModeAck)
        with self._cond:
            self._confirmed = mode if ack.result is ModeResult.ACCEPTED else before
        return ack.result

    def _restore_mode(self) -> None:
        with self._mode_lock:
            with self._cond:
                mode = self._wanted
                if mode is None or self._closed or self._confirmed is mode:
                    return
            try:
                result = self._send_mode(mode).name.lower()
            except DriverError as exc:
                result = str(exc)
        logger.warning("turnstile: %s mode sent again: %s", mode.name.lower(), result)

    def _send(self, data: bytes, what: str) -> bool:
        with self._cond:
            port = self._port
        if port is None:
            logger.debug("turnstile: %s not sent, port is down", what)
            return False
        try:
            with self._write_lock:
                port.write(data)
        except (serial.SerialException, OSError) as exc:
            # The reader sees the same failure on its next read and reconnects.
            logger.warning("turnstile: writing %s failed: %s", what, exc)
            return False
        return True

    def _describe(self) -> str:
        parts = []
        if self._wanted not in (None, GateMode.NORMAL):
            unsure = "" if self._confirmed is self._wanted else " (not confirmed by the board)"
            parts.append(f"mode {self._wanted.name.lower()}{unsure}")
        if self._status is not None:
            parts.append(
                f"door {'open' if self._status.door_open else 'closed'}, passages"
                f" in={self._status.passages_in} out={self._status.passages_out},"
                f" alarms: {_alarm_names(self._status.alarms)}"
            )
        if self._bad.total:
            recent = self._bad.recent(time.monotonic())
            parts.append(
                f"{self._bad.total} bad frames ({recent} in the last {RECENT_S // 60} min)"
            )
        repeats = self._limiter.counts()["repeats"]
        if repeats:
            parts.append(
                "alarm repeats folded: " + ", ".join(f"{k} {v}" for k, v in repeats.items())
            )
        return "; ".join(parts)

    # -- reader thread -------------------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            try:
                port = self._opener(self._settings)
            except (serial.SerialException, OSError, ValueError) as exc:
                self._down("unreachable", str(exc))
                delay = self._backoff(delay)
                continue
            try:
                answered = self._serve(port)
            except Exception:
                # A bug here must not silently end the gate's only reader: log it, back off and
                # start over, like any other port failure.
                logger.exception("turnstile reader failed")
                self._down("failed", "internal error in the reader, see the log")
                answered = False
            delay = FIRST_BACKOFF if answered else self._backoff(delay)

    def _backoff(self, delay: float) -> float:
        return min(max(delay * 2, FIRST_BACKOFF), self._settings.reconnect_max_seconds)

    def _down(self, state: str, problem: str) -> None:
        with self._cond:
            changed = (state, problem) != (self._state, self._problem)
            self._state, self._problem = state, problem
        if changed:
            logger.warning("turnstile port %s %s: %s", self._settings.port, state, problem)
        else:
            logger.debug("turnstile port %s still %s", self._settings.port, state)

    def _serve(self, port: SerialPort) -> bool:
        """Read from ``port`` until it fails or the gate closes; True if the board answered."""
        with self._cond:
            self._port = port
            self._state, self._problem = "connected", ""
            self._last_rx = None
            self._seen.clear()  # a board that reset restarts its event seqs
        logger.info("turnstile port %s open", self._settings.port)
        decoder = Decoder()
        answered = False
        next_poll = 0.0
        problem = "closed"
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_poll:
                    self._poll()
                    next_poll = now + self._settings.status_interval_seconds
                data = port.read(port.in_waiting or 1)
                if data and self._receive(decoder.feed(data)):
                    answered = True
        except (serial.SerialException, OSError) as exc:
            problem = str(exc) or type(exc).__name__
        finally:
            with self._cond:
                self._port = None
                self._confirmed = None
                if self._opening is not None and not self._stop.is_set():
                    self._opening.lost = True
                self._cond.notify_all()
            try:
                with self._write_lock:
                    port.close()
            except (serial.SerialException, OSError) as exc:
                logger.debug("turnstile: closing the port failed: %s", exc)
        if not self._stop.is_set():
            self._down("disconnected", problem)
        return answered

    def _poll(self) -> None:
        with self._cond:
            self._poll_seq = self._next_seq()
            seq = self._poll_seq
        self._send(encode(StatusRequest(seq)), "STATUS")

    def _receive(self, items: list[Message | Discarded]) -> bool:
        heard = False
        for item in items:
            if isinstance(item, Discarded):
                with self._cond:
                    self._bad.add(item.reason.value, time.monotonic())
                logger.debug(
                    "turnstile: dropped %d bytes (%s): %s", item.size, item.reason, item.data.hex()
                )
                continue
            if isinstance(item, OpenRequest | StatusRequest | EventAck | ModeRequest):
                # Our own requests coming back (an echoing adapter, a loop-back) say nothing about
                # the board, so they must not count as a sign of life.
                logger.debug("turnstile: ignoring a host request read from the line: %s", item)
                continue
            heard = True
            now = time.monotonic()
            with self._cond:
                silence = self._settings.silence_timeout_seconds
                back = self._last_rx is None or now - self._last_rx > silence
                self._last_rx = now
                if back:
                    # A new link, or a board that went quiet (perhaps restarting): whatever it
                    # acknowledged before may be gone.
                    self._confirmed = None
                restore = back and self._wanted is not None
            if restore:
                self._start_restore()
            if isinstance(item, OpenAck | ModeAck | StatusReply):
                self._reply(item)
            else:
                self._event(item)
        return heard

    def _start_restore(self) -> None:
        # In a thread of its own: the ack it waits for is read by this (the reader) thread.
        thread = threading.Thread(
            target=self._restore_mode, name=f"turnstile-mode-{self._settings.port}", daemon=True
        )
        self._restorer = thread
        thread.start()

    def _reply(self, reply: OpenAck | ModeAck | StatusReply) -> None:
        with self._cond:
            if isinstance(reply, StatusReply):
                if reply.seq == self._poll_seq:
                    self._status = reply
                    self._limiter.board_alarms(
                        (kind for bit, kind in _ALARM_BITS.items() if bit in reply.alarms),
                        time.monotonic(),
                    )
                    return
            elif self._awaiting.get(reply.seq) is type(reply):
                self._acks[reply.seq] = reply
                self._cond.notify_all()
                return
            logger.debug("turnstile: stale reply seq=%d ignored", reply.seq)

    def _event(self, event: BoardEvent) -> None:
        # Acknowledge every copy: the board repeats until it hears an ack, and the ack for an
        # earlier copy may be the one that got lost.
        self._send(encode(EventAck(event.seq)), "EVENT_ACK")
        now = time.monotonic()
        key = (event.COMMAND, event.seq, event.payload())
        with self._cond:
            self._seen = {k: t for k, t in self._seen.items() if now - t < _DEDUPE_SECONDS}
            if key in self._seen:
                return
            self._seen[key] = now
            if isinstance(event, Passage):
                self._passage(event)
            else:
                self._alarm(_SECURITY_KINDS[type(event)], event.seq, now)
            self._cond.notify_all()

    def _alarm(self, kind: SecurityKind, board_seq: int, now: float) -> None:
        raised = self._limiter.offer(kind, now)
        if raised is None:
            logger.debug("turnstile alarm %s counted, not raised (repeat or flood)", kind)
            return
        if len(self._security) == self._security.maxlen:
            logger.error("turnstile: security event queue full, oldest event dropped")
        self._security.append(SecurityEvent(raised, board_seq, now))
        if raised is SecurityKind.ALARM_FLOOD:
            logger.warning(
                "turnstile alarm flood: %s is beyond the budget of alarms a minute; further"
                " alarms are counted, not raised one by one, until a quiet minute",
                kind,
                extra={"alarm": raised.value, "board_seq": board_seq},
            )
        else:
            logger.warning(
                "turnstile alarm: %s", kind, extra={"alarm": kind.value, "board_seq": board_seq}
            )

    def _passage(self, event: Passage) -> None:
        opening = self._opening
        if event.opening_seq == 0:
            # Free mode or a hard-wired (fire alarm) release: expected, and nobody's opening.
            logger.info("turnstile free passage %s", event.direction.name.lower())
        elif opening is None or event.opening_seq != opening.seq:
            logger.warning(
                "turnstile: passage %s for opening %d matches no open window (late or unsolicited)",
                event.direction.name.lower(),
                event.opening_seq,
            )
        elif Direction.EITHER not in (opening.direction, event.direction) and (
            event.direction is not opening.direction
        ):
            logger.warning(
                "turnstile: passage %s during an opening for %s not counted",
                event.direction.name.lower(),
                opening.direction.name.lower(),
            )
        else:
            opening.passed = True
            logger.info(
                "turnstile passage %s",
                event.direction.name.lower(),
                extra={"opening_seq": opening.seq, "board_seq": event.seq},
            )


def _alarm_names(alarms: Alarm) -> str:
    return ", ".join(a.name.lower() for a in Alarm if a and a in alarms and a.name) or "none"
