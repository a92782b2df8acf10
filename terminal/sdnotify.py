"""sd_notify: tell systemd we are ready, alive, or stopping.

A few lines over the datagram socket rather than a dependency: the protocol is one sendto(), and
doing it here lets us support the abstract-namespace sockets systemd uses (``@`` prefix).
"""

import logging
import os
import socket

logger = logging.getLogger(__name__)


class Notifier:
    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_usec = os.environ.get("WATCHDOG_USEC", "")
        # A quarter of WatchdogSec (systemd suggests half): a slow turn of the tap loop then
        # still leaves a margin before systemd gives up on us.
        self.watchdog_interval = int(watchdog_usec) / 4e6 if watchdog_usec.isdigit() else None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, message: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            # Never let a supervisor hiccup stop the terminal; systemd will notice missing pings.
            logger.warning("sd_notify failed: %s", exc)

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
