"""A QR scanner module on a serial line (or USB CDC), one code per line.

Layers: a pyserial port (anything ``serial.serial_for_url`` opens: ``/dev/ttyACM0``, a udev
``/dev/serial/by-id/...`` link, ``socket://``, ``loop://``) -> the pure
:mod:`drivers.qr.lines` splitter -> :class:`~drivers.qr.presence.Presence`.

One reader thread owns the port: it opens it, reads with a short timeout (so ``close`` is
noticed within that), and when the port fails (adapter unplugged, module powered off) closes it
and reopens it with capped exponential backoff, forever, until :meth:`SerialQrReader.close`.
Scanners in continuous mode send a code again and again while it is held in front of them; the
same text within ``gone_seconds`` of the last is the same presentation.
"""

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Protocol

import serial

from drivers.interfaces import Health
from drivers.qr.interface import QrEvent
from drivers.qr.lines import LineSplitter, Refused
from drivers.qr.presence import Presence
from drivers.qr.settings import FIRST_BACKOFF, QrSettings
from models.errors import DriverError

logger = logging.getLogger(__name__)

_READ_TIMEOUT = 0.05  # how long one read blocks; bounds how late the reader notices close()
_JOIN_SECONDS = 3.0


class ScannerPort(Protocol):
    """The part of a pyserial port this driver uses (every URL handler provides it)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = ..., /) -> bytes: ...

    def close(self) -> None: ...


PortOpener = Callable[[QrSettings], ScannerPort]


def open_port(settings: QrSettings) -> ScannerPort:
    # exclusive: a second reader of the same port (a technician's minicom) would take half the
    # codes; flock makes that fail loudly instead.
    return serial.serial_for_url(
        settings.url, baudrate=settings.baudrate, timeout=_READ_TIMEOUT, exclusive=True
    )


class SerialQrReader:
    def __init__(self, settings: QrSettings, opener: PortOpener = open_port) -> None:
        if not settings.url:
            raise DriverError("the serial QR reader needs the scanner's port (url)")
        self._settings = settings
        self._opener = opener
        self._presence = Presence("serial", settings.gone_seconds)
        self._lock = threading.Lock()
        self._state = "connecting"
        self._problem = ""
        self._connected = False
        self._codes = 0
        self._refused: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"qr-serial-{settings.url}", daemon=True
        )
        self._thread.start()

    def next_event(self, timeout: float) -> QrEvent | None:
        return self._presence.next_event(timeout)

    def health(self) -> Health:
        if self._presence.closed:
            return Health(ok=False, state="closed")
        with self._lock:
            refused = ", ".join(f"{why} {n}" for why, n in sorted(self._refused.items()))
            detail = f"{self._codes} codes read"
            if refused:
                detail += f"; lines refused: {refused}"
            if not self._connected:
                return Health(ok=False, state=self._state, detail=self._problem)
        # A scanner says nothing until a code is shown: silence is not a fault.
        return Health(ok=True, state="connected", detail=detail)

    def close(self) -> None:
        self._presence.close()
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(_JOIN_SECONDS)
            if self._thread.is_alive():
                logger.warning("%s did not stop within %.0fs", self._thread.name, _JOIN_SECONDS)

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
                heard = self._serve(port)
            except Exception:
                # A bug here must not silently end the scanner's only reader: log it, back off
                # and start over, like any other port failure.
                logger.exception("qr scanner reader failed")
                self._down("failed", "internal error in the reader, see the log")
                heard = False
            # A port that opens and dies at once must not become a tight loop.
            delay = FIRST_BACKOFF if heard else self._backoff(delay)

    def _backoff(self, delay: float) -> float:
        return min(max(delay * 2, FIRST_BACKOFF), self._settings.reconnect_max_seconds)

    def _down(self, state: str, problem: str) -> None:
        with self._lock:
            changed = (state, problem) != (self._state, self._problem)
            self._state, self._problem, self._connected = state, problem, False
        if changed:
            logger.warning("qr scanner port %s %s: %s", self._settings.url, state, problem)

    def _serve(self, port: ScannerPort) -> bool:
        """Read codes from ``port`` until it fails or the reader closes; True if any byte came."""
        with self._lock:
            self._state, self._problem, self._connected = "connected", "", True
        logger.info("qr scanner port %s open", self._settings.url)
        # A fresh splitter: half a line from before the failure must not prefix the next code.
        splitter = LineSplitter(self._settings.max_length)
        heard = False
        problem = "closed"
        try:
            while not self._stop.is_set():
                data = port.read(port.in_waiting or 1)
                if data:
                    heard = True
                    self._receive(splitter.feed(data))
        except (serial.SerialException, OSError) as exc:
            problem = str(exc) or type(exc).__name__
        finally:
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:
                logger.debug("qr scanner: closing the port failed: %s", exc)
        if not self._stop.is_set():
            self._down("disconnected", problem)
        return heard

    def _receive(self, lines: list[str | Refused]) -> None:
        for line in lines:
            if isinstance(line, Refused):
                with self._lock:
                    self._refused[line.why] += 1
                logger.warning("qr scanner: line refused (%s, %d bytes)", line.why, line.size)
            elif self._presence.seen(line):
                with self._lock:
                    self._codes += 1
                logger.info("qr code scanned (%d characters)", len(line))
