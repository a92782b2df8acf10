"""The world around a simulated turnstile board: what people and accidents do to it, and what it
has seen. Kept apart from the board's protocol loop (:mod:`devtools.simboard`) so a test
reads one and steers the other."""

import queue
import threading
from collections import deque
from enum import StrEnum

from drivers.turnstile.codec import Command, Message, ModeRequest, OpenRequest, OpenResult


class PassageMode(StrEnum):
    """What happens after the board grants an opening."""

    PASSES = "pass"  # someone goes through ``passage_delay`` seconds after the opening
    NOBODY = "nobody"  # the window closes unused
    LATE = "late"  # a passage is reported ``late_by`` seconds after the window closed


class Incident(StrEnum):
    """Something that happens to the board rather than something it is asked."""

    DOOR_FORCED = "forced"
    HELD_OPEN = "held"
    TAMPER = "tamper"
    CLEAR = "clear"  # alarms reset, door closed: a technician was there
    UNPLUG = "unplug"  # the USB adapter is pulled: the pty disappears
    REPLUG = "replug"  # ...and comes back, as a new pty behind the same link
    REBOOT = "reboot"  # power cycle: power-up state (normal mode, counters 0), a new pty
    WALK_IN = "walk-in"  # someone walks through unasked: a free passage, if the gate is free
    WALK_OUT = "walk-out"


class SimBoardControl:
    """The world around a :class:`SimBoard`, and what it has seen; safe to use from any thread."""

    def __init__(
        self,
        mode: PassageMode = PassageMode.PASSES,
        passage_delay: float = 0.05,
        late_by: float = 1.0,
    ) -> None:
        self._lock = threading.Lock()
        self.mode = mode
        self.passage_delay = passage_delay
        self.late_by = late_by
        self.silent = False  # reads everything, answers nothing: a hung or unpowered board
        self._passages: deque[PassageMode] = deque()
        self._results: deque[OpenResult] = deque()
        self._garble: dict[Command, int] = {}
        self.incidents: queue.SimpleQueue[Incident] = queue.SimpleQueue()
        self._received: list[Message] = []
        self._sent: list[Message] = []
        self._openings: list[OpenRequest] = []
        self._modes: list[ModeRequest] = []
        self.noise: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.noise_written = 0  # bytes of noise that reached the line
        self.noise_dropped = 0  # bytes lost with a failed write (the pty gone)

    def inject(self, raw: bytes) -> None:
        """Put ``raw`` on the line from the board's side (noise, a forged or broken frame).

        The board's own thread writes it between whole frames of its own, as interference on a
        real cable would arrive between them more often than not, and only as fast as the host
        reads: nothing injected is dropped, and the board's own frames always find room."""
        self.noise.put(raw)

    def next_passage(self, mode: PassageMode) -> None:
        """What happens after the next opening (queued; then back to ``mode``)."""
        with self._lock:
            self._passages.append(mode)

    def next_open_result(self, result: OpenResult) -> None:
        with self._lock:
            self._results.append(result)

    def garble_next(self, command: Command = Command.OPEN_ACK, count: int = 1) -> None:
        """Send the next ``count`` frames of ``command`` with a broken CRC."""
        with self._lock:
            self._garble[command] = self._garble.get(command, 0) + count

    def happen(self, incident: Incident) -> None:
        self.incidents.put(incident)

    def received(self) -> list[Message]:
        """Every valid message the board received, repeats included, in order."""
        with self._lock:
            return list(self._received)

    def sent(self) -> list[Message]:
        """Every message the board wrote, repeats and garbled copies included, in order."""
        with self._lock:
            return list(self._sent)

    def openings(self) -> list[OpenRequest]:
        """The OPENs the board acted on (a repeated seq is answered, not acted on again)."""
        with self._lock:
            return list(self._openings)

    def modes(self) -> list[ModeRequest]:
        """The MODEs the board acted on (a repeated seq is answered, not acted on again)."""
        with self._lock:
            return list(self._modes)

    def _note(self, message: Message, acted: bool) -> None:
        with self._lock:
            self._received.append(message)
            if acted and isinstance(message, OpenRequest):
                self._openings.append(message)
            elif acted and isinstance(message, ModeRequest):
                self._modes.append(message)

    def _note_sent(self, message: Message) -> None:
        with self._lock:
            self._sent.append(message)

    def _take_passage(self) -> PassageMode:
        with self._lock:
            return self._passages.popleft() if self._passages else self.mode

    def _take_result(self) -> OpenResult:
        with self._lock:
            return self._results.popleft() if self._results else OpenResult.ACCEPTED

    def _take_garble(self, command: Command) -> bool:
        with self._lock:
            left = self._garble.get(command, 0)
            if left:
                self._garble[command] = left - 1
            return left > 0
