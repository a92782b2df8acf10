"""Simulated reader and gate for the demo and unit tests.

The devices themselves only consume; what a test or the demo wants to happen is pushed through a
separate control object (:class:`SimReaderControl`, :class:`SimGateControl`), so nothing in the
device interface exists only for tests.
"""

import logging
import queue
import shlex
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date

from drivers.interfaces import (
    AmountEntered,
    Cancelled,
    CardPresented,
    CardRemoved,
    Confirmed,
    CorrectionRequested,
    FacePayRequested,
    Health,
    KeypadEvent,
    PassageOutcome,
    PinEntered,
    ReaderEvent,
    Screen,
    TapIncomplete,
)
from models.cards import CardFault, Genuineness, PresentedCard
from models.errors import DriverError
from models.reasons import Reason

logger = logging.getLogger(__name__)


class ScriptError(ValueError):
    """A reader script line that cannot be understood; the message names the line."""


class SimReaderControl:
    """Push card presentations into a :class:`SimCardReader`."""

    def __init__(self) -> None:
        self.events: queue.Queue[ReaderEvent] = queue.Queue()

    def present(self, card: PresentedCard | CardFault) -> None:
        self.events.put(CardPresented(card))

    def remove(self) -> None:
        self.events.put(CardRemoved())

    def tear(self, detail: str = "card left the field") -> None:
        self.events.put(TapIncomplete(detail))

    def tap(self, card: PresentedCard | CardFault, hold: float = 0.0) -> None:
        """Present ``card`` and take it away after ``hold`` seconds (without blocking)."""
        self.present(card)
        if hold <= 0:
            self.remove()
        else:
            threading.Timer(hold, self.remove).start()


class SimCardReader:
    """A reader whose cards come from a :class:`SimReaderControl`."""

    def __init__(self, control: SimReaderControl) -> None:
        self._events = control.events
        self._closed = False

    def next_event(self, timeout: float) -> ReaderEvent | None:
        if self._closed:
            raise DriverError("simulated reader is closed")
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def health(self) -> Health:
        return Health(ok=not self._closed, state="closed" if self._closed else "simulated")

    def close(self) -> None:
        self._closed = True


_BOOL = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}
_FAULTS = {"malformed": Reason.CARD_MALFORMED, "unknown": Reason.CARD_UNKNOWN}


@dataclass(frozen=True, slots=True)
class ScriptStep:
    """One parsed script line: what to do, and how long to wait before it."""

    action: str
    card: PresentedCard | CardFault | None = None
    seconds: float = 0.0
    options: dict[str, str] = field(default_factory=dict)
    key: KeypadEvent | None = None


def _parse_card(number: str, options: dict[str, str], lineno: int) -> PresentedCard:
    if not number.isdigit():
        raise ScriptError(f"line {lineno}: card number must be digits, got {number!r}")
    try:
        genuine = _BOOL[options.get("genuine", "yes")]
        seq = int(options["seq"]) if "seq" in options else None
        if seq is not None and not 0 <= seq <= 255:
            raise ValueError("seq is one byte on the card: 0..255")
        valid_until = date.fromisoformat(options["until"]) if "until" in options else None
    except (KeyError, ValueError) as exc:
        raise ScriptError(f"line {lineno}: bad option value ({exc})") from None
    unknown = set(options) - {"genuine", "seq", "until", "hold"}
    if unknown:
        raise ScriptError(f"line {lineno}: unknown option(s) {', '.join(sorted(unknown))}")
    return PresentedCard(
        number=number,
        genuine=Genuineness.GENUINE if genuine else Genuineness.NOT_GENUINE,
        issue_seq=seq,
        valid_until=valid_until,
    )


def _seconds(text: str, what: str, lineno: int) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ScriptError(f"line {lineno}: {what} needs seconds, got {text!r}") from None
    if not 0 <= seconds <= 3600:  # also refuses nan
        raise ScriptError(f"line {lineno}: {what} must be 0..3600 seconds")
    return seconds


def parse_script_line(line: str, lineno: int = 1) -> ScriptStep | None:
    """Parse one line of a reader script; ``None`` for blank lines and comments.

    Grammar: ``tap NUMBER [seq=N] [genuine=yes|no] [until=YYYY-MM-DD] [hold=SECONDS]``,
    ``present NUMBER [...]``, ``remove``, ``tear``, ``fault malformed|unknown``, ``wait SECONDS``;
    on a POS also ``amount FEN``, ``pin DIGITS``, ``confirm``, ``cancel``, ``correct TX FEN``,
    ``face``.
    """
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:
        raise ScriptError(f"line {lineno}: {exc}") from None
    if not words:
        return None
    verb, args = words[0], words[1:]
    positional = [a for a in args if "=" not in a]
    options = dict(a.split("=", 1) for a in args if "=" in a)
    if verb in ("tap", "present"):
        if len(positional) != 1:
            raise ScriptError(f"line {lineno}: {verb} needs exactly one card number")
        card = _parse_card(positional[0], options, lineno)
        hold = _seconds(options.get("hold", "0"), "hold", lineno)
        return ScriptStep(verb, card=card, seconds=hold)
    if verb in ("remove", "tear") and not args:
        return ScriptStep(verb)
    if verb == "fault" and len(positional) == 1 and positional[0] in _FAULTS and not options:
        return ScriptStep(verb, card=CardFault(_FAULTS[positional[0]], "simulated fault"))
    if verb == "wait" and len(positional) == 1 and not options:
        return ScriptStep(verb, seconds=_seconds(positional[0], "wait", lineno))
    key = _keypad_step(verb, positional, options, lineno)
    if key is not None:
        return ScriptStep("key", key=key)
    raise ScriptError(f"line {lineno}: cannot understand {line.strip()!r}")


def _fen(text: str, lineno: int) -> int:
    if not text.isdigit() or not 0 < int(text) <= 10_000_000:
        raise ScriptError(f"line {lineno}: amounts are whole fen 1..10000000, got {text!r}")
    return int(text)


def _keypad_step(
    verb: str, positional: list[str], options: dict[str, str], lineno: int
) -> KeypadEvent | None:
    if options:
        return None
    if verb == "amount" and len(positional) == 1:
        return AmountEntered(_fen(positional[0], lineno))
    if verb == "pin" and len(positional) == 1:
        if not positional[0].isdigit() or not 4 <= len(positional[0]) <= 12:
            raise ScriptError(f"line {lineno}: a PIN is 4 to 12 digits")
        return PinEntered(positional[0])
    if verb == "confirm" and not positional:
        return Confirmed()
    if verb == "cancel" and not positional:
        return Cancelled()
    if verb == "correct" and len(positional) == 2:
        return CorrectionRequested(positional[0], _fen(positional[1], lineno))
    if verb == "face" and not positional:
        return FacePayRequested()
    return None


def parse_script(lines: Iterable[str]) -> list[ScriptStep]:
    """Parse a whole script up front so a typo fails before any card is tapped."""
    steps = [parse_script_line(line, n) for n, line in enumerate(lines, start=1)]
    return [s for s in steps if s is not None]


def play_step(
    control: SimReaderControl, step: ScriptStep, keypad: "SimKeypadControl | None" = None
) -> None:
    """Carry out one step, blocking for ``wait`` steps; key steps need a keypad."""
    if step.action == "key" and step.key is not None:
        if keypad is None:
            raise ScriptError("this terminal has no keypad")
        keypad.press(step.key)
    elif step.action == "wait":
        time.sleep(step.seconds)
    elif step.action == "tap" and step.card is not None:
        control.tap(step.card, hold=step.seconds)
    elif step.action in ("present", "fault") and step.card is not None:
        control.present(step.card)
    elif step.action == "remove":
        control.remove()
    elif step.action == "tear":
        control.tear()


class SimGateControl:
    """Decide what the simulated turnstile reports after each opening."""

    def __init__(self, default: PassageOutcome = PassageOutcome.PASSED, delay: float = 0.1) -> None:
        self.default = default
        self.delay = delay
        self.outcomes: queue.Queue[PassageOutcome] = queue.Queue()
        self.openings: list[str | None] = []
        self.fail_next_open = False
        self.raised: list[str] = []
        self.mode = "normal"  # what set_mode last made the simulated board accept
        self.refuse_next_mode = False

    def alarm(self, kind: str) -> None:
        """The simulated board reports ``door_forced``, ``held_open`` or ``tamper``."""
        self.raised.append(kind)

    def next_outcome(self, outcome: PassageOutcome) -> None:
        self.outcomes.put(outcome)


class SimGate:
    """A turnstile that passes (or times out) as its control says."""

    MODES = ("normal", "free", "locked")

    def __init__(self, control: SimGateControl) -> None:
        self._control = control
        self._open = False

    def open(self, direction: str | None, seconds: float) -> None:
        if self._control.mode == "locked":
            raise DriverError("gate locked")
        if self._control.mode == "free":
            # Held released already, as SerialGate in free mode: nothing to open, no opening.
            self._open = False
            return
        if self._control.fail_next_open:
            self._control.fail_next_open = False
            raise DriverError("simulated gate board did not answer")
        self._control.openings.append(direction)
        # What a fault campaign counts from outside the process: every time the gate opened.
        logger.info("sim gate: opened", extra={"direction": direction})
        self._open = True

    def set_mode(self, mode: str) -> None:
        if mode not in self.MODES:
            raise ValueError(f"mode {mode!r} is not 'normal', 'free' or 'locked'")
        if self._control.refuse_next_mode:
            self._control.refuse_next_mode = False
            raise DriverError(f"simulated gate board refused {mode} mode")
        self._control.mode = str(mode)

    def wait_passage(self, timeout: float) -> PassageOutcome:
        if not self._open:
            return PassageOutcome.TIMEOUT
        self._open = False
        try:
            outcome = self._control.outcomes.get_nowait()
        except queue.Empty:
            outcome = self._control.default
        if outcome is PassageOutcome.PASSED:
            time.sleep(min(self._control.delay, timeout))
        else:
            time.sleep(timeout)
        return outcome

    def alarms(self) -> list[str]:
        taken, self._control.raised = self._control.raised, []
        return taken

    def health(self) -> Health:
        return Health(ok=True, state="simulated")

    def close(self) -> None:
        self._open = False


class SimKeypadControl:
    """Press keys on a :class:`SimKeypad`."""

    def __init__(self) -> None:
        self.events: queue.Queue[KeypadEvent] = queue.Queue()

    def press(self, event: KeypadEvent) -> None:
        self.events.put(event)


class SimKeypad:
    def __init__(self, control: SimKeypadControl) -> None:
        self._events = control.events
        self._closed = False

    def next_event(self, timeout: float) -> KeypadEvent | None:
        if self._closed:
            raise DriverError("simulated keypad is closed")
        try:
            if timeout <= 0:
                return self._events.get_nowait()
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._closed = True


class SimDisplay:
    """Keeps every screen shown (the demo prints them; tests read them)."""

    def __init__(self) -> None:
        self.screens: list[Screen] = []
        self.listeners: list[Callable[[Screen], None]] = []

    def show(self, screen: Screen) -> None:
        self.screens.append(screen)
        for listener in self.listeners:
            listener(screen)

    def close(self) -> None:
        pass
