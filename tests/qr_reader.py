"""A stand-in QR reader for the loop and App tests, on the drivers.qr interface.

The reader drivers (drivers.qr) bring their own simulated reader for the demo; this one only
hands over what a test shows, and is not a driver.
"""

from collections import deque

from drivers.interfaces import Health
from drivers.qr.interface import QrEvent, QrPresented, QrRemoved


class PlaceholderQrReader:
    def __init__(self) -> None:
        self.events: deque[QrEvent] = deque()
        self.closed = False

    def show(self, text: str, source: str = "sim") -> None:
        self.events.append(QrPresented(text, source))

    def hide(self) -> None:
        self.events.append(QrRemoved())

    def next_event(self, timeout: float) -> QrEvent | None:
        return self.events.popleft() if self.events else None

    def health(self) -> Health:
        return Health(not self.closed, "closed" if self.closed else "ok")

    def close(self) -> None:
        self.closed = True
