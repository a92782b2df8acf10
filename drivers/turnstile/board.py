"""Serial turnstile/relay board behind the :class:`~drivers.interfaces.Gate` interface.

Layers: a pyserial port (anything ``serial.serial_for_url`` opens: ``/dev/ttyUSB0``, a udev
``/dev/serial/by-id/...`` link, ``socket://``, ``loop://``, ``spy://``) -> the pure
:mod:`drivers.turnstile.codec` -> :class:`SerialGate`. The protocol is
``docs/turnstile-protocol.md``.

Threads. Each gate runs one reader thread that owns the port: it opens it, reads and decodes
bytes, acknowledges board events, polls STATUS every ``status_interval`` (the board's heartbeat)
and, when the port fails (USB adapter unplugged, board powered off), closes it and reopens it with
capped exponential backoff; the delay only resets once the board has answered, so a port that
opens and dies at once never becomes a tight loop. The caller's thread (the door flow) writes OPEN
frames under a write lock and waits on a condition for the reader to file the ack or the passage.
pyserial's ``serial.threaded.ReaderThread`` is not used: it stops for good at the first read
error, and this gate must outlive an unplugged adapter.
"""

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import serial

from drivers.interfaces import Health, PassageOutcome
from drivers.turnstile.codec import (
    Alarm,
    BoardEvent,
    Decoder,
    Direction,
    Discarded,
    DoorForced,
    EventAck,
    HeldOpen,
    Message,
    OpenAck,
    OpenRequest,
    OpenResult,
    Passage,
    StatusReply,
    StatusRequest,
    Tamper,
    encode,
)
from models.errors import ConfigError, DriverError

logger = logging.getLogger(__name__)

_READ_TIMEOUT = 0.05  # how long one read blocks; bounds how late the reader notices close()
_FIRST_BACKOFF = 0.1
_DEDUPE_SECONDS = 5.0  # longer than the board's whole repeat schedule for one event
_MAX_SECURITY_EVENTS = 1000
_JOIN_SECONDS = 3.0


class SecurityKind(StrEnum):
    DOOR_FORCED = "door_forced"
    HELD_OPEN = "held_open"
    TAMPER = "tamper"


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
_DIRECTIONS: dict[str | None, Direction] = {
    None: Direction.EITHER,
    "none": Direction.EITHER,
    "in": Direction.IN,
    "out": Direction.OUT,
}


@dataclass(frozen=True, slots=True)
class SerialGateSettings:
    """What the serial gate needs; the terminal's config layer fills it from TOML."""

    port: str  # device path or pyserial URL
    baudrate: int = 9600  # most turnstile controller boards ship at 9600 8N1
    ack_timeout: float = 0.3  # seconds to wait for OPEN_ACK before sending the OPEN again
    retries: int = 2  # repeats after the first OPEN; then the board counts as unreachable
    status_interval: float = 1.0  # STATUS poll period, which doubles as the heartbeat
    silence_timeout: float = 3.0  # no valid frame for this long: health is not ok
    passage_grace: float = 0.3  # added to the window for an event in flight or repeated once
    max_backoff: float = 5.0  # cap of the reopen delay while the port is gone
    write_timeout: float = 0.5  # a write that blocks longer is a failed attempt

    def __post_init__(self) -> None:
        if not self.port:
            raise ConfigError("port: must name a device or a pyserial URL")
        if self.baudrate <= 0:
            raise ConfigError(f"baudrate: {self.baudrate} is not a positive rate")
        _between("ack_timeout", self.ack_timeout, 0.01, 10)
        _between("retries", self.retries, 0, 10)
        _between("status_interval", self.status_interval, 0.01, 60)
        _between("silence_timeout", self.silence_timeout, self.status_interval, 600)
        _between("passage_grace", self.passage_grace, 0, 5)
        _between("max_backoff", self.max_backoff, _FIRST_BACKOFF, 300)
        _between("write_timeout", self.write_timeout, 0.01, 10)


def _between(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:  # also refuses nan
        raise ConfigError(f"{key}: {value} is outside [{low}, {high}]")


class SerialPort(Protocol):
    """The part of a pyserial port this driver uses (every URL handler provides it)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = ..., /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


PortOpener = Callable[[SerialGateSettings], SerialPort]


def open_port(settings: SerialGateSettings) -> SerialPort:
    # exclusive: a second daemon (or a technician's minicom) on the same adapter would steal
    # half the frames; flock makes that fail loudly instead.
    return serial.serial_for_url(
        settings.port,
        baudrate=settings.baudrate,
        timeout=_READ_TIMEOUT,
        write_timeout=settings.write_timeout,
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

    def __init__(self, settings: SerialGateSettings, opener: PortOpener = open_port) -> None:
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
        self._awaiting: int | None = None
        self._acks: dict[int, OpenAck] = {}
        self._opening: _Opening | None = None
        self._security: deque[SecurityEvent] = deque(maxlen=_MAX_SECURITY_EVENTS)
        self._seen: dict[tuple[int, int, bytes], float] = {}
        self._discarded = 0
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
            seq = self._next_seq()
            # Registered before sending: the reader may file the passage before this thread
            # even wakes up for the ack.
            opening = _Opening(seq, code)
            self._opening = opening
            self._awaiting = seq
            self._acks.clear()
        frame = encode(OpenRequest(seq, code, units))
        attempts = self._settings.retries + 1
        ack: OpenAck | None = None
        for attempt in range(1, attempts + 1):
            # The same seq every time, so a board that opened but whose ack was lost answers
            # again instead of opening twice.
            self._send(frame, "OPEN")
            ack = self._wait_ack(seq)
            if ack is not None or self._closed:
                break
            logger.warning(
                "turnstile: no ack for OPEN seq=%d (attempt %d of %d)", seq, attempt, attempts
            )
        if ack is None or ack.result is not OpenResult.ACCEPTED:
            with self._cond:
                self._awaiting = None
                if self._opening is opening:
                    self._opening = None
                problem = self._problem
            if ack is None:
                why = f"; port: {problem}" if problem else ""
                raise DriverError(
                    f"turnstile board did not acknowledge OPEN after {attempts} attempts{why}"
                )
            raise DriverError(f"turnstile board refused to open: {ack.result.name.lower()}")
        logger.info(
            "turnstile released: seq=%d direction=%s window=%.1fs",
            seq,
            code.name.lower(),
            units / 10,
        )

    def wait_passage(self, timeout: float) -> PassageOutcome:
        with self._cond:
            opening = self._opening
            if opening is None:
                return PassageOutcome.TIMEOUT
            self._cond.wait_for(
                lambda: opening.passed or self._closed,
                max(timeout, 0.0) + self._settings.passage_grace,
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
            if silent > self._settings.silence_timeout:
                return Health(ok=False, state="silent", detail=f"no valid frame for {silent:.1f}s")
            return Health(ok=True, state="ok", detail=self._describe())

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._stop.set()
        self._thread.join(_JOIN_SECONDS)
        if self._thread.is_alive():
            logger.warning("turnstile reader thread did not stop within %.0fs", _JOIN_SECONDS)

    # -- beyond the interface ------------------------------------------------------------------

    def security_events(self, timeout: float = 0.0) -> list[SecurityEvent]:
        """Take the alarms raised so far, waiting up to ``timeout`` seconds for the first."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._security) or self._closed, timeout)
            taken = list(self._security)
            self._security.clear()
        return taken

    def alarms(self) -> list[str]:
        """The Gate interface's view of :meth:`security_events`: kinds only, never waiting."""
        return [str(event.kind) for event in self.security_events(0.0)]

    def last_status(self) -> StatusReply | None:
        """The board's latest STATUS answer (door sensor, counters, alarms), for diagnostics."""
        with self._cond:
            return self._status

    # -- caller side ---------------------------------------------------------------------------

    def _next_seq(self) -> int:
        # 1..255: seq 0 is reserved for "no opening" in PASSAGE events.
        self._seq = self._seq % 255 + 1
        return self._seq

    def _wait_ack(self, seq: int) -> OpenAck | None:
        with self._cond:
            self._cond.wait_for(
                lambda: seq in self._acks or self._closed, self._settings.ack_timeout
            )
            return self._acks.pop(seq, None)

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
        if self._status is not None:
            alarms = [a.name.lower() for a in Alarm if a and a in self._status.alarms and a.name]
            parts.append(
                f"door {'open' if self._status.door_open else 'closed'}, passages"
                f" in={self._status.passages_in} out={self._status.passages_out},"
                f" alarms: {', '.join(alarms) or 'none'}"
            )
        if self._discarded:
            parts.append(f"{self._discarded} bad frames")
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
            delay = _FIRST_BACKOFF if answered else self._backoff(delay)

    def _backoff(self, delay: float) -> float:
        return min(max(delay * 2, _FIRST_BACKOFF), self._settings.max_backoff)

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
                    next_poll = now + self._settings.status_interval
                data = port.read(port.in_waiting or 1)
                if data and self._receive(decoder.feed(data)):
                    answered = True
        except (serial.SerialException, OSError) as exc:
            problem = str(exc) or type(exc).__name__
        finally:
            with self._cond:
                self._port = None
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
                    self._discarded += 1
                logger.debug(
                    "turnstile: dropped %d bytes (%s): %s", item.size, item.reason, item.data.hex()
                )
                continue
            if isinstance(item, OpenRequest | StatusRequest | EventAck):
                # Our own requests coming back (an echoing adapter, a loop-back) say nothing about
                # the board, so they must not count as a sign of life.
                logger.debug("turnstile: ignoring a host request read from the line: %s", item)
                continue
            heard = True
            with self._cond:
                self._last_rx = time.monotonic()
            if isinstance(item, OpenAck | StatusReply):
                self._reply(item)
            else:
                self._event(item)
        return heard

    def _reply(self, reply: OpenAck | StatusReply) -> None:
        with self._cond:
            if isinstance(reply, OpenAck) and reply.seq == self._awaiting:
                self._acks[reply.seq] = reply
                self._cond.notify_all()
            elif isinstance(reply, StatusReply) and reply.seq == self._poll_seq:
                self._status = reply
            else:
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
                kind = _SECURITY_KINDS[type(event)]
                if len(self._security) == self._security.maxlen:
                    logger.error("turnstile: security event queue full, oldest event dropped")
                self._security.append(SecurityEvent(kind, event.seq, now))
                logger.warning(
                    "turnstile alarm: %s",
                    kind,
                    extra={"alarm": kind.value, "board_seq": event.seq},
                )
            self._cond.notify_all()

    def _passage(self, event: Passage) -> None:
        opening = self._opening
        if opening is None or event.opening_seq != opening.seq:
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
