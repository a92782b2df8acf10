"""The tap loop: one thread that owns the flow, carries out its commands, and never waits long.

Everything reaches the flow through one inbox, in order: reader and keypad events (from a pump
thread per device), what the gate and camera workers report, and jobs (HQ's commands, diag's
requests) that must run between presentations. Each turn takes one item, steps the flow, and
executes the commands it returns:

- ``Commit`` runs here, at once, and its result is stepped into the flow before anything else:
  nothing is actuated before the record is durable;
- ``OpenGate`` and the face checks go to worker threads, whose results come back as events;
- ``Show``, ``Tell``, ``KeepStill`` and ``Reply`` are quick and run here.

After every turn the gate's alarms are journalled and the systemd watchdog is pinged when due,
so a turn that hangs (not only a dead process) gets the daemon restarted, and a prompt left
unanswered does not, since nothing here waits for it.

``threaded=False`` is for tests and benchmarks: no pump or worker threads; devices are polled
without blocking and workers run inline, so :meth:`TapLoop.run_until_idle` drives a whole
presentation deterministically.
"""

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, TypeVar

from drivers.interfaces import (
    CardPresented,
    CardReader,
    Display,
    Gate,
    Keypad,
    KeypadEvent,
    PassageOutcome,
    Screen,
)
from drivers.qr.interface import QrPresented, QrReader
from models.door import PassageReport
from models.errors import DriverError, StoreError
from sync.engine import CommandRefused
from terminal.clock import Clock, rfc3339
from terminal.faces.evidence import FaceUse, keep_still
from terminal.faces.verifier import FaceOutcome, FaceResult
from terminal.faces.watch import FaceWatch
from terminal.flows.door import DoorFlow, FlowNotice, Notice
from terminal.flows.pos import PosFlow
from terminal.flows.steps import (
    Command,
    Commit,
    FaceChecked,
    FlowEvent,
    GateReported,
    IdentifyFace,
    KeepStill,
    Moment,
    NotRecorded,
    OpenGate,
    Recorded,
    Reply,
    Show,
    Tell,
    Tick,
    VerifyFace,
)
from terminal.sdnotify import Notifier
from terminal.store import SecurityEvent, Store

logger = logging.getLogger(__name__)

T = TypeVar("T")
Flow = DoorFlow | PosFlow
Intercept = Callable[[CardPresented | QrPresented], bool]
TURN_SECONDS = 0.2  # the longest a turn waits for something to happen
KEY_SECONDS = 0.05  # how long a key may wait while the reader is asked for a card
# At a stop, how long the presentation in progress may take to finish: a usual open window and
# its grace, and less than the unit's TimeoutStopSec=30, after which systemd kills the daemon.
FINISH_SECONDS = 25.0


@dataclass(frozen=True, slots=True)
class LoopHooks:
    """What an observer of the loop (diag) is given when the loop is built, never later.

    ``intercept`` sees each card (and each code shown) before the flow does and may take it
    (True: the flow never sees it); ``screen`` sees each screen before the display shows it;
    ``told`` hears what the flow tells its listeners. They run on the loop, so they must be
    quick; one that fails is logged and the tap goes on. An observer that stops watching turns
    its own hooks off: the loop keeps the ones it was built with.
    """

    intercept: Intercept | None = None
    screen: Callable[[Screen], None] | None = None
    told: Callable[[object], None] | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    run: Callable[[], None]


class _Inbox:
    """A FIFO the loop waits on; keypad events can be taken ahead of a card (see ``take``)."""

    def __init__(self) -> None:
        self._items: deque[FlowEvent | _Job] = deque()
        self._ready = threading.Condition()

    def put(self, item: "FlowEvent | _Job") -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def take(self, timeout: float) -> "FlowEvent | _Job | None":
        with self._ready:
            if not self._items and timeout > 0:
                self._ready.wait(timeout)
            return self._items.popleft() if self._items else None

    def keys_waiting(self) -> list[KeypadEvent]:
        """Take out the keypad events already waiting: keys pressed just before a tap belong to
        it (an amount is what this card pays, a correction makes it the supervisor's)."""
        with self._ready:
            keys = [i for i in self._items if isinstance(i, KeypadEvent)]
            for key in keys:
                self._items.remove(key)
            return keys

    def __len__(self) -> int:
        with self._ready:
            return len(self._items)


class _Worker:
    """A thread running one job at a time (a gate opening, a face check), in order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: deque[Callable[[], None]] = deque()
        self._ready = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        with self._ready:
            self._jobs.append(job)
            self._ready.notify()

    def stop(self, timeout: float) -> None:
        with self._ready:
            self._stopped = True
            self._ready.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._jobs and not self._stopped:
                    self._ready.wait()
                if self._stopped:
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:
                logger.exception("%s job failed", self.name)


class TapLoop:
    def __init__(
        self,
        flow: Flow,
        *,
        store: Store,
        clock: Clock,
        timezone: tzinfo,
        reader: CardReader,
        qr_reader: QrReader | None = None,
        gate: Gate | None = None,
        keypad: Keypad | None = None,
        display: Display | None = None,
        faces: FaceUse | None = None,
        watch: FaceWatch | None = None,
        threaded: bool = True,
        hooks: LoopHooks | None = None,
    ) -> None:
        self.flow = flow
        self.store = store
        self.clock = clock
        self.timezone = timezone
        self.reader = reader
        self.qr_reader = qr_reader
        self.gate = gate
        self.keypad = keypad
        self.display = display
        self.faces = faces
        self.watch = watch
        self.threaded = threaded
        self.hooks = hooks or LoopHooks()
        if self.hooks.told is not None:
            flow.listeners.append(self.hooks.told)
        self._inbox = _Inbox()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._gate_worker: _Worker | None = None
        self._face_worker: _Worker | None = None
        self._thread_id: int | None = None
        if watch is not None:
            watch.deliver_to(self.post)

    # --- from any thread ----------------------------------------------------------------------

    def post(self, event: FlowEvent) -> None:
        self._inbox.put(event)

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the loop between presentations; its errors are logged."""
        self._inbox.put(_Job(job))

    def call(self, job: Callable[[], T], timeout: float) -> T:
        """Run ``job`` on the loop and return its result (or raise its error); ``TimeoutError``
        when the loop did not get to it in time, in which case it will not run at all."""
        if threading.get_ident() == self._thread_id:
            return job()
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return  # its caller gave up: a gate must not open minutes later
            try:
                future.set_result(job())
            except BaseException as exc:  # handed back to the caller, not lost
                future.set_exception(exc)

        self.submit(run)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def on_gate(self, job: Callable[[], T], timeout: float = 60.0) -> T:
        """Run ``job`` on the gate worker, in turn with the openings of taps (diag's gate test),
        and wait for its result here, off the loop."""
        worker = self._gate_worker
        if worker is None:
            return job()
        future: Future[T] = Future()

        def run() -> None:
            try:
                future.set_result(job())
            except BaseException as exc:
                future.set_exception(exc)

        worker.submit(run)
        return future.result(timeout)

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the device pump and the workers (threaded mode)."""
        if not self.threaded:
            return
        thread = threading.Thread(target=self._pump, name="input-pump", daemon=True)
        thread.start()
        self._threads.append(thread)
        if self.gate is not None:
            self._gate_worker = _Worker("gate-worker")
        if self.faces is not None:
            self._face_worker = _Worker("face-worker")
        if self.watch is not None:
            self.watch.start()

    def _pump(self) -> None:
        # With a keypad the reader is asked for short spells, so keys are not kept waiting.
        wait = TURN_SECONDS if self.keypad is None else KEY_SECONDS
        while not self._stop.is_set():
            try:
                self._read_devices(wait)
            except DriverError as exc:
                logger.warning("input: %s", exc)
                self._stop.wait(0.5)

    def _read_devices(self, wait: float) -> None:
        """Keys first, then at most one reader event; and the keys pressed while that card was
        being read ahead of it: keys pressed with a tap belong to it (an amount is what this
        card pays, a correction makes it the supervisor's). Then what the QR reader has, without
        waiting: its codes come at the card reader's pace, within a turn."""
        self._read_keys()
        event = self.reader.next_event(wait)
        if event is not None:
            if isinstance(event, CardPresented):
                self._read_keys()
            self.post(event)
        self._read_codes()

    def _read_codes(self) -> None:
        if self.qr_reader is None:
            return
        while (code := self.qr_reader.next_event(0)) is not None:
            self._read_keys()  # an amount typed before the code was shown is what it pays
            self.post(code)

    def _read_keys(self) -> None:
        if self.keypad is None:
            return
        while (key := self.keypad.next_event(0)) is not None:
            self.post(key)

    def stop(self) -> None:
        self._stop.set()
        if self.watch is not None:
            self.watch.stop()
        for worker in (self._gate_worker, self._face_worker):
            if worker is not None:
                worker.stop(2.0)
        for thread in self._threads:
            thread.join(2.0)

    def run(self, stop: threading.Event, notifier: Notifier, until: Callable[[], bool]) -> None:
        """Turn until ``stop`` is set or ``until()`` says so; then finish the presentation in
        progress (a gate that opened has its passage recorded) before returning."""
        interval = notifier.watchdog_interval
        last_ping = self.clock.monotonic_ns() / 1e9
        self._thread_id = threading.get_ident()
        finish_by: float | None = None
        while True:
            if finish_by is None and (stop.is_set() or until()):
                finish_by = self.now().mono + FINISH_SECONDS
            if finish_by is not None and (self.flow.idle or self.now().mono > finish_by):
                return
            self.turn(TURN_SECONDS)
            # Pinging from this loop (not a timer thread) means a hung turn stops the pings and
            # systemd restarts us, which is the point of the watchdog.
            now = self.clock.monotonic_ns() / 1e9
            if interval is not None and now - last_ping >= interval:
                notifier.watchdog()
                last_ping = now

    # --- on the loop --------------------------------------------------------------------------

    def now(self) -> Moment:
        return Moment(self.clock.now().astimezone(self.timezone), self.clock.monotonic_ns() / 1e9)

    def turn(self, timeout: float) -> None:
        """Handle one thing that happened (or a tick after ``timeout`` seconds)."""
        if not self.threaded:
            self.poll_devices()
        deadline = self.flow.deadline()
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - self.now().mono))
        item = self._inbox.take(timeout)
        if isinstance(item, _Job):
            try:
                item.run()
            except Exception:
                logger.exception("job on the tap loop failed")
        elif isinstance(item, CardPresented | QrPresented):
            for key in self._inbox.keys_waiting():
                self.feed(key)
            if not self._intercepted(item):
                self.feed(item)
        elif item is not None:
            self.feed(item)
        self.feed(Tick())
        self._journal_alarms()

    def _intercepted(self, presented: CardPresented | QrPresented) -> bool:
        intercept = self.hooks.intercept
        if intercept is None:
            return False
        try:
            return intercept(presented)
        except Exception:
            logger.exception("card intercept failed; the flow has the card")
            return False

    @property
    def pending(self) -> int:
        """Items waiting in the inbox."""
        return len(self._inbox)

    def run_until_idle(self, limit: float = 30.0) -> None:
        """Tests: turn until the flow is idle and nothing waits in the inbox (bounded)."""
        end = self.now().mono + limit
        while True:
            self.turn(0.0)
            if self.flow.idle and not len(self._inbox):
                if not self.threaded:
                    self.poll_devices()
                    if len(self._inbox):
                        continue
                return
            if self.now().mono > end:
                raise TimeoutError(f"flow still {self.flow.state} after {limit} s")

    def feed(self, event: FlowEvent) -> None:
        """Step the flow with ``event`` and carry out what it asks, then anything it deferred."""
        self._execute(self.flow.step(event, self.now()))
        while (waiting := self.flow.take_deferred()) is not None:
            self._execute(self.flow.step(waiting, self.now()))

    def poll_devices(self) -> None:
        """Unthreaded: move what the devices have into the inbox, without waiting."""
        try:
            while True:
                before = self.pending
                self._read_devices(0)
                if self.pending == before:
                    return
        except DriverError as exc:
            logger.warning("input: %s", exc)

    def _execute(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, Commit):
                self._execute(self.flow.step(self._commit(command), self.now()))
            elif isinstance(command, OpenGate):
                self._run_worker(self._gate_worker, lambda c=command: self._open(c))  # type: ignore[misc]
            elif isinstance(command, VerifyFace | IdentifyFace):
                self._run_worker(self._face_worker, lambda c=command: self._face(c))  # type: ignore[misc]
            elif isinstance(command, Show):
                self._show(command)
            elif isinstance(command, Tell):
                self._tell(command.message)
            elif isinstance(command, KeepStill):
                self._keep(command)
            elif isinstance(command, Reply):
                if command.refusal is not None:
                    command.future.set_exception(CommandRefused(command.refusal))
                else:
                    command.future.set_result(command.result or {})

    def _commit(self, command: Commit) -> Recorded | NotRecorded:
        try:
            return Recorded(self.store.commit(command.draft, command.event, command.effects))
        except StoreError as exc:
            return NotRecorded(str(exc))

    def _run_worker(self, worker: _Worker | None, job: Callable[[], None]) -> None:
        if self.threaded and worker is not None:
            worker.submit(job)
        else:
            job()

    def _open(self, command: OpenGate) -> None:
        gate = self.gate
        try:
            if gate is None:
                raise DriverError("this terminal has no gate")
            gate.open(command.direction, command.seconds)
            outcome = gate.wait_passage(command.seconds)
            passed = outcome is PassageOutcome.PASSED
            report = PassageReport.PASSED if passed else PassageReport.NOT_PASSED
            self.post(GateReported(command.ticket, report))
        except DriverError as exc:
            self.post(GateReported(command.ticket, PassageReport.GATE_FAULT, str(exc)))

    def _face(self, command: VerifyFace | IdentifyFace) -> None:
        faces = self.faces
        result = FaceResult(FaceOutcome.CAMERA_FAULT)
        if faces is not None:
            # Both would read the same camera, and the 1:1 check should have the CPU to itself.
            paused = self.watch.paused() if self.watch is not None else nullcontext()
            try:
                with paused:
                    if isinstance(command, VerifyFace):
                        result = faces.verifier.verify(command.holder_id, command.seconds)
                    else:
                        result = faces.verifier.identify(command.seconds)
            except DriverError as exc:
                logger.warning("face check: %s", exc)  # the terminal keeps taking cards
        logger.info(
            "face check %s",
            result.outcome,
            extra={"holder": result.holder_id, "score": result.score, "frames": result.frames},
        )
        self.post(FaceChecked(command.ticket, result))

    def _show(self, command: Show) -> None:
        if self.display is None:
            return
        if self.hooks.screen is not None:
            try:
                self.hooks.screen(command.screen)
            except Exception:
                logger.exception("screen hook failed")
        try:
            self.display.show(command.screen)
        except DriverError as exc:
            logger.warning("display: %s", exc)

    def _tell(self, message: object) -> None:
        listeners: list[Callable[[Any], None]] = list(self.flow.listeners)
        for listener in listeners:
            try:
                listener(message)
            except Exception:
                logger.exception("flow listener failed")

    def _keep(self, command: KeepStill) -> None:
        if self.faces is None:
            return
        keep_still(
            self.faces.faces,
            command.frame,
            kind=command.kind,
            at=command.at,
            retention=self.faces.retention,
            holder_id=command.holder_id,
            tx_seq=command.tx_seq,
        )

    def _journal_alarms(self) -> None:
        """Door forced, held open, tamper: journalled as security events, told to listeners."""
        if self.gate is None or not isinstance(self.flow, DoorFlow):
            return
        try:
            alarms = self.gate.alarms()
        except DriverError as exc:
            logger.warning("gate alarms unavailable: %s", exc)
            return
        door = self.flow.settings.door_id
        for alarm in alarms:
            now = self.now().local
            logger.warning("gate alarm %s", alarm, extra={"door": door})
            try:
                self.store.record_event(
                    SecurityEvent(alarm, {"source": "gate"}), at=rfc3339(now), door=door
                )
            except StoreError as exc:
                logger.error("gate alarm %s not recorded: %s", alarm, exc)
            self._tell(FlowNotice(now, Notice.ALARM, alarm))
