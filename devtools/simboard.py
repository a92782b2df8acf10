"""A simulated turnstile board speaking ``docs/turnstile-protocol.md`` on the far end of a pty.

The board keeps a small state (door sensor, passage counters, alarm flags, the openings it
granted, unacknowledged events) and answers as the protocol says, so the real
:class:`~drivers.turnstile.board.SerialGate` can be exercised through a real pseudo-terminal and
pyserial. What the world around the board does (someone passes, nobody does, the door is forced,
the USB adapter is pulled) is pushed through a separate :class:`SimBoardControl`.

    python -m devtools.simboard --pty [--link PATH] [--mode pass|nobody|late]

prints the port's path and then takes one command per line on stdin (``help`` lists them).
With ``--link`` the board keeps a symlink to its current pty, the way udev keeps
``/dev/serial/by-id/...`` for a USB adapter: ``unplug`` removes it, ``replug`` makes a new pty and
points the link at it, so a gate configured with the link reconnects.
"""

import argparse
import contextlib
import fcntl
import logging
import os
import queue
import select
import signal
import struct
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from devtools.simworld import Incident, PassageMode, SimBoardControl
from drivers.turnstile.codec import (
    Alarm,
    BoardEvent,
    Command,
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
    frame_body,
    to_frame,
    wrap_body,
)

logger = logging.getLogger(__name__)
__all__ = ["Incident", "PassageMode", "SimBoard", "SimBoardControl", "main"]

_TICK = 0.01
_NOISE_PER_TICK = 4096  # bytes of injected noise at most per turn of the loop
_NOISE_LOW_WATER = 1024  # bytes the host has not read yet, above which no noise goes out


@dataclass(slots=True)
class _Pending:
    event: BoardEvent
    due: float
    repeats_left: int


class SimBoard:
    """The board's firmware, run in a thread on the master side of a pty pair."""

    def __init__(
        self,
        control: SimBoardControl | None = None,
        link: Path | None = None,
        event_repeat: float = 0.25,
        event_repeats: int = 3,
    ) -> None:
        self.control = control or SimBoardControl()
        self._link = link
        self._event_repeat = event_repeat
        self._event_repeats = event_repeats
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_name = ""
        self._decoder = Decoder()
        self._door_open = False
        self._counts = {Direction.IN: 0, Direction.OUT: 0}
        self._alarms = Alarm.NONE
        self._last_open: tuple[OpenRequest, OpenAck] | None = None
        self._last_mode: tuple[ModeRequest, ModeAck] | None = None
        self._mode = GateMode.NORMAL
        self._timers: list[tuple[float, Callable[[], None]]] = []
        self._pending: dict[int, _Pending] = {}
        self._event_seq = 0
        self._noise_rest = b""  # the part of an injected piece a short write left over

    @property
    def gate_mode(self) -> GateMode:
        """The mode the board is in (set by the host's MODE, back to normal on a reboot)."""
        return self._mode

    @property
    def path(self) -> str:
        """Where the driver should open the port: the link if there is one, else the pty."""
        return str(self._link) if self._link is not None else self._slave_name

    def start(self) -> str:
        self._plug()
        self._thread = threading.Thread(target=self._run, name="sim-turnstile-board", daemon=True)
        self._thread.start()
        return self.path

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(3.0)
        self._unplug()

    def __enter__(self) -> "SimBoard":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the pty ("USB adapter") ---------------------------------------------------------------

    def _plug(self) -> None:
        if self._link is not None and self._link.exists() and not self._link.is_symlink():
            raise FileExistsError(f"{self._link} exists and is not a symlink; not replacing it")
        master, slave = os.openpty()
        # Raw at once: until the driver configures the port, the line discipline would echo the
        # board's own frames back to it.
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._slave_name = os.ttyname(slave)
        self._decoder = Decoder()
        if self._link is not None:
            fresh = self._link.with_name(self._link.name + ".new")
            fresh.unlink(missing_ok=True)
            fresh.symlink_to(self._slave_name)
            fresh.replace(self._link)  # atomic: the driver never sees a half-made link
        logger.info("simulated turnstile board on %s", self.path)

    def _unplug(self) -> None:
        if self._link is not None:
            self._link.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        self._pending.clear()  # the adapter's buffers go with it

    # -- firmware loop -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._incidents()
            self._write_noise()
            master = self._master
            if master is None:
                self._stop.wait(_TICK)
            elif select.select([master], [], [], _TICK)[0]:
                try:
                    data = os.read(master, 4096)
                except BlockingIOError:
                    data = b""
                except OSError as exc:  # the far end went away in a way a pty can report
                    logger.debug("simulated board read failed: %s", exc)
                    data = b""
                    self._stop.wait(_TICK)
                for item in self._decoder.feed(data):
                    self._handle(item)
            self._run_timers()

    def _incidents(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:
                incident = self.control.incidents.get_nowait()
                if incident is Incident.UNPLUG:
                    self._unplug()
                elif incident is Incident.REPLUG:
                    if self._master is None:
                        self._plug()
                elif incident is Incident.REBOOT:
                    self._unplug()
                    self._power_up()
                    self._plug()
                elif incident in (Incident.WALK_IN, Incident.WALK_OUT):
                    self._walk(Direction.IN if incident is Incident.WALK_IN else Direction.OUT)
                elif incident is Incident.CLEAR:
                    self._alarms, self._door_open = Alarm.NONE, False
                elif incident is Incident.DOOR_FORCED:
                    self._alarms |= Alarm.FORCED
                    self._emit(DoorForced)
                elif incident is Incident.HELD_OPEN:
                    self._alarms |= Alarm.HELD_OPEN
                    self._door_open = True
                    self._emit(HeldOpen)
                elif incident is Incident.TAMPER:
                    self._alarms |= Alarm.TAMPER
                    self._emit(Tamper)

    def _write_noise(self) -> None:
        # A pty holds some 20 kB: filled by noise, it would cut the board's own frames short
        # (_send drops what does not fit), which is the host's bug to find, not the board's.
        master, slave = self._master, self._slave
        if master is None or slave is None or _unread(slave) > _NOISE_LOW_WATER:
            return
        budget = _NOISE_PER_TICK
        while budget > 0:
            raw = self._noise_rest
            if not raw:
                try:
                    raw = self.control.noise.get_nowait()
                except queue.Empty:
                    return
            try:
                written = os.write(master, raw)
            except BlockingIOError:
                written = 0
            except OSError as exc:
                logger.debug("simulated board noise not written: %s", exc)
                self.control.noise_dropped += len(raw)
                self._noise_rest = b""
                return
            self.control.noise_written += written
            self._noise_rest = raw[written:]
            if self._noise_rest:
                return
            budget -= written

    def _power_up(self) -> None:
        self._door_open = False
        self._counts = {Direction.IN: 0, Direction.OUT: 0}
        self._alarms = Alarm.NONE
        self._last_open = self._last_mode = None
        self._mode = GateMode.NORMAL
        self._timers.clear()
        self._event_seq = 0

    def _walk(self, direction: Direction) -> None:
        if self._mode is GateMode.FREE:
            self._after(time.monotonic(), 0, direction)
        else:
            logger.info("simulated board: the arm is locked, nobody walks through")

    def _handle(self, item: Message | Discarded) -> None:
        if isinstance(item, Discarded):
            logger.debug("simulated board dropped %d bytes (%s)", item.size, item.reason)
            return
        # The last OPEN and the last MODE are remembered with their answers: a repeat is the
        # host retrying after a lost ack, answered again but not acted on again.
        last = self._last_open if isinstance(item, OpenRequest) else self._last_mode
        repeat = (
            isinstance(item, OpenRequest | ModeRequest) and last is not None and last[0] == item
        )
        self.control._note(item, acted=not repeat and not self.control.silent)
        if self.control.silent:
            return
        if repeat and last is not None:
            self._send(last[1])
        elif isinstance(item, OpenRequest):
            self._send(self._open(item))
        elif isinstance(item, ModeRequest):
            self._send(self._set_mode(item))
        elif isinstance(item, StatusRequest):
            self._send(
                StatusReply(
                    item.seq,
                    door_open=self._door_open,
                    passages_in=self._counts[Direction.IN],
                    passages_out=self._counts[Direction.OUT],
                    alarms=self._alarms,
                )
            )
        elif isinstance(item, EventAck):
            self._pending.pop(item.seq, None)

    def _set_mode(self, request: ModeRequest) -> ModeAck:
        # With the enclosure open the serial line itself may be the intruder's, so no standing
        # release then; locked and normal never hold the gate released, so they always apply.
        refuse = request.mode is GateMode.FREE and Alarm.TAMPER in self._alarms
        ack = ModeAck(request.seq, ModeResult.REFUSED if refuse else ModeResult.ACCEPTED)
        self._last_mode = (request, ack)
        if not refuse:
            self._mode = request.mode
            logger.info("simulated board: %s mode", request.mode.name.lower())
        return ack

    def _open(self, request: OpenRequest) -> OpenAck:
        if self._mode is GateMode.LOCKED:
            ack = OpenAck(request.seq, OpenResult.REFUSED)
        else:
            ack = OpenAck(request.seq, self.control._take_result())
        self._last_open = (request, ack)
        if ack.result is not OpenResult.ACCEPTED or self._mode is GateMode.FREE:
            return ack  # in free mode the arm is already released: nothing to open
        window = request.units / 10
        mode = self.control._take_passage()
        direction = Direction.IN if request.direction is Direction.EITHER else request.direction
        now = time.monotonic()
        if mode is PassageMode.PASSES and self.control.passage_delay < window:
            self._after(now + self.control.passage_delay, request.seq, direction)
        elif mode is PassageMode.LATE:
            self._after(now + window + self.control.late_by, request.seq, direction)
        return ack

    def _after(self, due: float, opening_seq: int, direction: Direction) -> None:
        def passage() -> None:
            self._counts[direction] = (self._counts[direction] + 1) & 0xFFFFFFFF
            self._emit(lambda seq: Passage(seq, direction, opening_seq))

        self._timers.append((due, passage))

    def _emit(self, make: Callable[[int], BoardEvent]) -> None:
        self._event_seq = self._event_seq % 255 + 1
        event = make(self._event_seq)
        self._pending[event.seq] = _Pending(
            event, time.monotonic() + self._event_repeat, self._event_repeats
        )
        self._send(event)

    def _run_timers(self) -> None:
        now = time.monotonic()
        due = [job for job in self._timers if job[0] <= now]
        self._timers = [job for job in self._timers if job[0] > now]
        for _, job in due:
            job()
        for seq, pending in list(self._pending.items()):
            if pending.due > now:
                continue
            if pending.repeats_left <= 0:
                del self._pending[seq]
                continue
            pending.repeats_left -= 1
            pending.due = now + self._event_repeat
            self._send(pending.event)

    def _send(self, message: Message) -> None:
        if self._master is None or self.control.silent:
            return
        self.control._note_sent(message)
        body = frame_body(to_frame(message))
        if self.control._take_garble(message.COMMAND):
            body = body[:-1] + bytes((body[-1] ^ 0x5A,))
        try:
            os.write(self._master, wrap_body(body))
        except BlockingIOError:
            # Nobody is reading the port: a UART would drop the bytes too.
            logger.debug("simulated board output dropped (%s)", message.COMMAND.name)
        except OSError as exc:
            logger.debug("simulated board write failed: %s", exc)


def _unread(fd: int) -> int:
    """Bytes waiting in a tty's input queue (the host's side of the pty)."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])


_HELP = """commands, one per line:
  pass | nobody | late     what happens after each opening from now on
  silent | answer          stop / resume answering (a hung board)
  garble                   send the next OPEN_ACK with a broken CRC
  forced | held | tamper   raise that alarm (an event, and the flag in STATUS)
  clear                    reset alarms and the door sensor
  walk-in | walk-out       someone walks through unasked (a passage only in free mode)
  unplug | replug          pull / put back the USB adapter (needs --link to be found again)
  reboot                   power-cycle the board: normal mode, counters 0, a new pty
  quit"""


def _command(board: SimBoard, line: str) -> bool:
    word = line.strip().lower()
    control = board.control
    if word in {m.value for m in PassageMode}:
        control.mode = PassageMode(word)
    elif word in {"silent", "answer"}:
        control.silent = word == "silent"
    elif word == "garble":
        control.garble_next(Command.OPEN_ACK)
    elif word in {i.value for i in Incident}:
        control.happen(Incident(word))
    elif word in {"quit", "exit"}:
        return False
    elif word:
        sys.stdout.write(_HELP + "\n")
        sys.stdout.flush()
    return True


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.simboard",
        description="Simulated turnstile board on a pseudo-terminal (for the demo and tests).",
    )
    parser.add_argument(
        "--pty", action="store_true", required=True, help="serve on a new pty; print its path"
    )
    parser.add_argument("--link", type=Path, help="keep a symlink to the current pty here")
    parser.add_argument(
        "--mode", choices=[m.value for m in PassageMode], default=PassageMode.PASSES.value
    )
    parser.add_argument("--delay", type=float, default=0.5, help="seconds to a passage")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _stop_on_signal)
    board = SimBoard(SimBoardControl(PassageMode(args.mode), passage_delay=args.delay), args.link)
    sys.stdout.write(board.start() + "\n")
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            if not _command(board, line):
                return 0
        signal.pause()  # stdin closed (run in the background): serve until a signal
    except KeyboardInterrupt:
        pass
    finally:
        board.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
