"""The card's end of vsmartcard's vpcd socket protocol.

vpcd, the pcscd reader driver from Debian's ``vsmartcard-vpcd``, listens on TCP port 35963 for
reader slot 0 and 35963 + n for slot n; Debian's ``/etc/reader.conf.d/vpcd`` gives two slots,
``Virtual PCD 00 00`` (port 35963) and ``Virtual PCD 00 01`` (port 35964). A virtual card
*connects* to that port, and it is in the field for as long as the connection stays up:
closing the socket is pulling the card out.

Every message, both ways, is a 2-byte big-endian length followed by the payload. From vpcd, a
1-byte payload is a control code (``00`` power off, ``01`` power on, ``02`` reset, ``04`` send
the ATR) and anything longer is a command APDU. Only ``04`` and APDUs get an answer.

pcscd polls the card's presence every 400 ms by asking for the ATR, so insertion and removal
show within that time.
"""

import logging
import socket
import threading
import time
from enum import StrEnum
from typing import Protocol

logger = logging.getLogger(__name__)

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963  # slot 0; slot n is VPCD_PORT + n

CONTROL_POWER_OFF = 0x00
CONTROL_POWER_ON = 0x01
CONTROL_RESET = 0x02
CONTROL_ATR = 0x04


class VirtualCard(Protocol):
    """What an emulated card implements to sit in a vpcd slot."""

    def atr(self) -> bytes: ...

    def power_off(self) -> None: ...

    def power_on(self) -> None: ...

    def reset(self) -> None: ...

    def process(self, apdu: bytes) -> bytes | None:
        """Answer one command APDU; ``None`` pulls the card out of the field instead."""
        ...


class LinkEnd(StrEnum):
    """Why :func:`serve` returned."""

    TORN = "torn"  # the card left the field on purpose
    CLOSED = "closed"  # vpcd closed the connection (pcscd stopped)
    STOPPED = "stopped"  # the caller's stop event was set


def make_atr(historical: bytes) -> bytes:
    """The ATR a PC/SC reader builds for an ISO 14443-4 card: ``3B 8n 80 01 <hist> TCK``."""
    if len(historical) > 15:
        raise ValueError("at most 15 historical bytes")
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    tck = 0
    for byte in body:
        tck ^= byte
    return b"\x3b" + body + bytes([tck])


def connect(
    host: str, port: int, timeout: float, stop: threading.Event | None = None
) -> socket.socket | None:
    """Connect to vpcd, retrying while pcscd is not listening yet; ``None`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=1.0)
        except OSError:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                return None
            time.sleep(0.1)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


class _Link:
    """Framed reads and writes on a connected vpcd socket."""

    def __init__(self, sock: socket.socket, stop: threading.Event | None) -> None:
        self._sock = sock
        self._stop = stop
        self._buffer = bytearray()
        # A short timeout only so a stop request is noticed; it is not a protocol timeout.
        sock.settimeout(0.25)

    def _quickack(self) -> None:
        # Guards against the Nagle/delayed-ACK stall (~40 ms per APDU) that appears when a
        # message goes out in two writes and the second waits for the ACK of the first: we
        # acknowledge at once, and send each message in one write with TCP_NODELAY. Linux
        # leaves quick-ack mode on its own, hence setting it after every receive.
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is not None:
            self._sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)

    def receive(self) -> bytes | None:
        """One message, or ``None`` when the peer closed the connection or we were stopped."""
        while True:
            if len(self._buffer) >= 2:
                size = int.from_bytes(self._buffer[:2], "big")
                if len(self._buffer) >= 2 + size:
                    message = bytes(self._buffer[2 : 2 + size])
                    del self._buffer[: 2 + size]
                    return message
            if self._stop is not None and self._stop.is_set():
                return None
            try:
                chunk = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            self._quickack()
            self._buffer += chunk

    def send(self, payload: bytes) -> bool:
        try:
            self._sock.sendall(len(payload).to_bytes(2, "big") + payload)
        except OSError:
            return False
        return True


def serve(sock: socket.socket, card: VirtualCard, stop: threading.Event | None = None) -> LinkEnd:
    """Answer vpcd on ``sock`` until the card leaves, vpcd hangs up or ``stop`` is set.

    The socket is closed on return: for vpcd that is the card leaving the field.
    """
    link = _Link(sock, stop)
    try:
        while True:
            message = link.receive()
            if message is None:
                return LinkEnd.STOPPED if stop is not None and stop.is_set() else LinkEnd.CLOSED
            if len(message) == 1:
                code = message[0]
                if code == CONTROL_ATR:
                    if not link.send(card.atr()):
                        return LinkEnd.CLOSED
                elif code == CONTROL_POWER_OFF:
                    card.power_off()
                elif code == CONTROL_POWER_ON:
                    card.power_on()
                elif code == CONTROL_RESET:
                    card.reset()
                else:
                    logger.debug("ignoring unknown vpcd control code %02X", code)
                continue
            answer = card.process(message)
            if answer is None:
                return LinkEnd.TORN
            if not link.send(answer):
                return LinkEnd.CLOSED
    finally:
        sock.close()
