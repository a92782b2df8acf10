"""The QR reader interface: codes shown to the terminal's camera or a scanner module."""

from dataclasses import dataclass
from typing import Protocol

from drivers.interfaces import Health


@dataclass(frozen=True, slots=True)
class QrPresented:
    """A code came into view (or was scanned): ``text`` as decoded, without line endings."""

    text: str
    source: str  # "camera", "serial" or "sim"


@dataclass(frozen=True, slots=True)
class QrRemoved:
    """The code left view; the next sighting of the same text is a new presentation."""


QrEvent = QrPresented | QrRemoved


class QrReader(Protocol):
    def next_event(self, timeout: float) -> QrEvent | None:
        """Block up to ``timeout`` seconds for the next event; ``None`` when nothing happened."""
        ...

    def health(self) -> Health: ...

    def close(self) -> None: ...
