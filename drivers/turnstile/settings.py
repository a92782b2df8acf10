"""What a :class:`~drivers.turnstile.board.SerialGate` is configured with and the port it drives.

Kept apart from ``board`` (which alone imports pyserial) so the settings and the port's shape can
be used without the driver, and so the driver module stays about its threads and the protocol.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from models.errors import ConfigError

FIRST_BACKOFF = 0.1  # seconds before the first reopen of a failed port


@dataclass(frozen=True, slots=True)
class SerialGateSettings:
    """What the serial gate needs; the terminal's config layer fills it from TOML."""

    port: str  # device path or pyserial URL
    baudrate: int = 9600  # most turnstile controller boards ship at 9600 8N1
    ack_timeout: float = 0.3  # seconds to wait for an OPEN or MODE ack before sending it again
    retries: int = 2  # repeats after the first OPEN or MODE; then the board is unreachable
    status_interval: float = 1.0  # STATUS poll period, which doubles as the heartbeat
    silence_timeout: float = 3.0  # no valid frame for this long: health is not ok
    passage_grace: float = 0.3  # added to the window for an event in flight or repeated once
    max_backoff: float = 5.0  # cap of the reopen delay while the port is gone
    write_timeout: float = 0.5  # a write that blocks longer is a failed attempt

    def __post_init__(self) -> None:
        if not self.port:
            raise ConfigError("port: must name a device or a pyserial URL")
        if self.baudrate <= 0:
            raise ConfigError(f"baudrate: {self.baudrate} is not a positive rate")
        _between("ack_timeout", self.ack_timeout, 0.01, 10)
        _between("retries", self.retries, 0, 10)
        _between("status_interval", self.status_interval, 0.01, 60)
        _between("silence_timeout", self.silence_timeout, self.status_interval, 600)
        _between("passage_grace", self.passage_grace, 0, 5)
        _between("max_backoff", self.max_backoff, FIRST_BACKOFF, 300)
        _between("write_timeout", self.write_timeout, 0.01, 10)


def _between(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:  # also refuses nan
        raise ConfigError(f"{key}: {value} is outside [{low}, {high}]")


class SerialPort(Protocol):
    """The part of a pyserial port this driver uses (every URL handler provides it)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = ..., /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


PortOpener = Callable[[SerialGateSettings], SerialPort]
