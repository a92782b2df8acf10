"""A throwaway mosquitto on a free loopback port, for the demo, the tests and the benchmarks.

Production brokers are configured by the site (docs/broker.md); this one exists so that everything
that needs a real broker on one machine starts it the same way: loopback only, no persistence,
anonymous unless the caller passes its own listener, and the same port across restarts so that
clients reconnect to it.
"""

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def find_mosquitto() -> str | None:
    """The broker binary, or ``None`` when it is not installed."""
    found = shutil.which("mosquitto")
    if found is not None:
        return found
    # Debian installs it in /usr/sbin, which is not on an ordinary user's PATH.
    fallback = Path("/usr/sbin/mosquitto")
    return str(fallback) if fallback.exists() else None


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    A broker keeps its port across restarts, and while it is down its clients keep connecting to
    it. Inside the ephemeral range one of those connects can be given the very port as its own
    source port and connect to itself (TCP simultaneous open), or any outgoing connection can
    take it, and the restarted broker fails with "Address already in use". Below the range the
    kernel never hands the port out by itself.
    """
    low = _ephemeral_low()
    chooser = random.SystemRandom()
    for _ in range(200) if low > 11_000 else ():
        port = chooser.randrange(10_000, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Whether ``condition`` held within ``timeout`` seconds (checked once more at the end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


class BrokerStartError(RuntimeError):
    """mosquitto did not accept connections in time; the message carries the end of its log."""


class Mosquitto:
    """``start``/``stop``/``restart`` one broker process configured in ``directory``.

    ``extra`` is appended to the configuration; when it contains its own ``listener`` line it
    replaces the default anonymous loopback listener (the ACL tests bring their own).
    """

    def __init__(
        self,
        directory: Path,
        *,
        extra: str = "",
        port: int | None = None,
        binary: str | None = None,
    ) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise FileNotFoundError("mosquitto is not installed (./dev setup installs it)")
        self.binary = found
        self.port = port or free_port()
        self.conf = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        # As root, mosquitto would switch to its own user and lose access to this directory.
        user = "user root\n" if os.geteuid() == 0 else ""
        listener = (
            extra
            if "listener" in extra
            else f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{extra}"
        )
        self.conf.write_text(f"{user}persistence false\n{listener}\n", encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> None:
        """Start and wait until it accepts connections, else :class:`BrokerStartError`."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        if not wait_for(self._listening, timeout):
            self.stop()
            raise BrokerStartError(f"mosquitto did not start: {self.log_tail()}")

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self) -> str:
        """The end of the broker's log, to say why it did not start."""
        try:
            tail = self.log.read_text(encoding="utf-8", errors="replace")[-2000:].strip()
        except OSError:
            tail = ""
        return tail or f"nothing in its log ({self.binary} -c {self.conf.name})"
