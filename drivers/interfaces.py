"""The device interfaces the flows program against.

Each is a :class:`typing.Protocol`; the composition root picks an implementation from the
config's ``driver`` field through an explicit mapping. Implementations translate their library's
exceptions into :class:`models.errors.DriverError` (or :class:`~models.errors.CardError`).
"""

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from models.cards import CardCredential


@dataclass(frozen=True, slots=True)
class Health:
    """A device's state for status reports and the diag CLI."""

    ok: bool
    state: str
    detail: str = ""
    warning: str | None = None  # serving, but something a person must know (diag: degraded)


@dataclass(frozen=True, slots=True)
class CardPresented:
    """A card entered the field and was read (or failed to read in a way that decides: a fault)."""

    credential: CardCredential


@dataclass(frozen=True, slots=True)
class CardRemoved:
    """The card left the field; the next presentation of the same card is a new tap."""


@dataclass(frozen=True, slots=True)
class TapIncomplete:
    """The card left mid-exchange: nothing is decided or recorded; the holder should tap again."""

    detail: str = ""


ReaderEvent = CardPresented | CardRemoved | TapIncomplete


class CardReader(Protocol):
    """A contactless reader that turns card presentations into credentials."""

    def next_event(self, timeout: float) -> ReaderEvent | None:
        """Block up to ``timeout`` seconds for the next event; ``None`` when nothing happened."""
        ...

    def health(self) -> Health: ...

    def close(self) -> None: ...


class PassageOutcome(StrEnum):
    """What the turnstile reported after it was opened."""

    PASSED = "passed"
    TIMEOUT = "timeout"


class Gate(Protocol):
    """A turnstile, barrier or door lock."""

    def open(self, direction: str | None, seconds: float) -> None:
        """Release the gate for one passage; ``DriverError`` when the board is unreachable."""
        ...

    def wait_passage(self, timeout: float) -> PassageOutcome:
        """Block until the board reports the passage, or ``timeout`` seconds elapse.

        ``DriverError`` when the link to the board dropped during the opening (outcome unknown).
        """
        ...

    def set_mode(self, mode: str) -> None:
        """``normal``, ``free`` (held released for an evacuation) or ``locked`` (refuses every
        opening); ``DriverError`` when the board is unreachable or refuses."""
        ...

    def alarms(self) -> list[str]:
        """Take the alarms raised since the last call (door_forced, held_open, tamper)."""
        ...

    def health(self) -> Health: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class AmountEntered:
    """The cashier typed an amount (fen) for the next tap."""

    amount: int


@dataclass(frozen=True, slots=True)
class PinEntered:
    # Out of the repr, so no log line or traceback that shows the event shows the PIN.
    pin: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Confirmed:
    """OK pressed: pay again after a duplicate-tap warning."""


@dataclass(frozen=True, slots=True)
class Cancelled:
    """Cancel pressed: drop the amount or the payment waiting for a PIN."""


@dataclass(frozen=True, slots=True)
class CorrectionRequested:
    """A supervisor starts a correction of payment ``tx`` (a transaction id, or "last")."""

    tx: str
    amount: int


@dataclass(frozen=True, slots=True)
class FacePayRequested:
    """The customer chose to pay by face instead of tapping a card."""


KeypadEvent = (
    AmountEntered | PinEntered | Confirmed | Cancelled | CorrectionRequested | FacePayRequested
)


class Keypad(Protocol):
    """The cashier's and customer's keys on a POS unit (contract: tests/contract)."""

    def next_event(self, timeout: float) -> KeypadEvent | None:
        """The next key event, or None after ``timeout`` seconds; 0 never waits (the tap loop
        polls with it). Raises :class:`~models.errors.DriverError` once closed."""
        ...

    def close(self) -> None:
        """Release the keys; a second call does nothing."""
        ...


@dataclass(frozen=True, slots=True)
class Screen:
    """What the customer display shows: a headline and a few lines; tone colours it."""

    headline: str
    lines: tuple[str, ...] = ()
    tone: str = "info"  # "info" | "ok" | "error" | "prompt"


class Display(Protocol):
    """The customer display (contract: tests/contract)."""

    def show(self, screen: Screen) -> None:
        """Replace what is shown, promptly; after close it does nothing or raises
        :class:`~models.errors.DriverError`, the only error the tap loop expects from it."""
        ...

    def close(self) -> None:
        """A second call does nothing."""
        ...
