"""A simulated QR reader for the demo and tests: a code is held up with ``show`` and taken away
with ``hide``, like a phone in front of the camera."""

from drivers.interfaces import Health
from drivers.qr.interface import QrEvent
from drivers.qr.presence import Presence

# A shown code stays in view until hide(): no sighting is ever late.
_FOREVER = float("inf")


class SimQrReader:
    def __init__(self) -> None:
        self._presence = Presence("sim", _FOREVER)

    def show(self, text: str, source: str = "sim") -> None:
        """``text`` is in view from now on; showing the code already in view changes nothing, and
        another code replaces it (removed, then presented). ``source`` is what the events say, so
        a demo can stand in for the camera or a scanner."""
        self._presence.seen(text, source=source)

    def hide(self) -> None:
        self._presence.withdraw()

    def next_event(self, timeout: float) -> QrEvent | None:
        return self._presence.next_event(timeout)

    def health(self) -> Health:
        if self._presence.closed:
            return Health(ok=False, state="closed")
        return Health(ok=True, state="simulated")

    def close(self) -> None:
        self._presence.close()
