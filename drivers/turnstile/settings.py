"""What a :class:`~drivers.turnstile.board.SerialGate` is configured with and the port it drives.

Kept apart from ``board`` (which alone imports pyserial) so the settings and the port's shape can
be used without the driver, and so the driver module stays about its threads and the protocol.
:class:`SerialGateSettings` is the config's ``[gate]`` section with ``driver = "serial"`` itself:
each key has one name, one default and one check, from TOML or from a test alike.
"""

from collections.abc import Callable
from typing import Literal, Protocol

from pydantic import Field, model_validator

from models.settings import Section

FIRST_BACKOFF = 0.1  # seconds before the first reopen of a failed port


class SerialGateSettings(Section):
    """A turnstile/relay board on a serial line (docs/turnstile-protocol.md)."""

    driver: Literal["serial"] = Field(description="Serial turnstile board.")
    port: str = Field(
        min_length=1,
        description="Device (/dev/ttyUSB0, /dev/serial/by-id/...) or a pyserial URL "
        "(socket://host:port).",
    )
    # Most turnstile controller boards ship at 9600 8N1.
    baudrate: int = Field(9600, gt=0, le=921_600, description="Line speed, 8N1.")
    ack_timeout_seconds: float = Field(
        0.3,
        ge=0.01,
        le=10,
        description="Wait for the board to acknowledge an open or mode command.",
    )
    retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Resends of an unacknowledged open or mode command; then the board is "
        "unreachable.",
    )
    status_interval_seconds: float = Field(
        1.0,
        ge=0.01,
        le=60,
        description="STATUS poll period, which doubles as the board's heartbeat.",
    )
    silence_timeout_seconds: float = Field(
        3.0,
        ge=0.01,
        le=600,
        description="A board silent this long is reported unhealthy (at least one STATUS poll "
        "period).",
    )
    passage_grace_seconds: float = Field(
        0.3,
        ge=0,
        le=5,
        description="Added to the opening window for a passage event in flight or repeated once.",
    )
    reconnect_max_seconds: float = Field(
        5.0,
        ge=FIRST_BACKOFF,
        le=300,
        description="Cap of the doubling reopen delay while the port is gone.",
    )
    write_timeout_seconds: float = Field(
        0.5, ge=0.01, le=10, description="A write blocking longer is a failed attempt."
    )

    @model_validator(mode="after")
    def _heard_before_silent(self) -> "SerialGateSettings":
        # Shorter than the poll period, every healthy board would be reported silent between polls.
        if self.silence_timeout_seconds < self.status_interval_seconds:
            raise ValueError(
                f"silence_timeout_seconds ({self.silence_timeout_seconds}) is shorter than "
                f"status_interval_seconds ({self.status_interval_seconds})"
            )
        return self


class SerialPort(Protocol):
    """The part of a pyserial port this driver uses (every URL handler provides it)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = ..., /) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...

    def close(self) -> None: ...


PortOpener = Callable[[SerialGateSettings], SerialPort]
