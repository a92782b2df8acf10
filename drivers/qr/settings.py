"""What a QR reader is configured with: the config's QR reader section itself.

No OpenCV or pyserial import here, so a config can be read, checked and documented on a machine
without either (like ``drivers.camera.settings``).
"""

from typing import Literal

from pydantic import Field, model_validator

from models.settings import Section

FIRST_BACKOFF = 0.1  # seconds before the first reopen of a scanner port that failed


class QrSettings(Section):
    """Where electronic-card QR codes come from: the terminal's camera or a scanner module."""

    driver: Literal["camera", "serial", "sim"] = Field(
        "camera",
        description="camera: decode codes from the face camera's frames; serial: a scanner module "
        "that sends one code per line; sim: the demo's reader.",
    )
    url: str = Field(
        "",
        description="serial: the scanner's port, a device (/dev/ttyACM0, /dev/serial/by-id/...) "
        "or a pyserial URL (socket://host:port).",
    )
    # The usual factory setting of scanner modules in their serial/CDC mode.
    baudrate: int = Field(9600, gt=0, le=921_600, description="serial: line speed, 8N1.")
    max_length: int = Field(
        512,
        ge=16,
        le=4096,
        description="A code (a scanner's line, or what the camera decoded) longer than this many "
        "characters is refused; an electronic card's code is about 250.",
    )
    gone_seconds: float = Field(
        0.6,
        gt=0,
        le=10,
        description="A code not seen (camera) or not scanned again (serial) for this long counts "
        "as taken away; shown again after that, it is a new presentation.",
    )
    decode_fps: float = Field(
        5.0,
        gt=0,
        le=30,
        description="camera: at most this many frames a second are searched for a code; the "
        "rest of the camera's time is the face matching's.",
    )
    reconnect_max_seconds: float = Field(
        5.0,
        ge=FIRST_BACKOFF,
        le=300,
        description="serial: cap of the doubling reopen delay while the scanner's port is gone.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> "QrSettings":
        if self.driver == "serial" and not self.url:
            raise ValueError("driver 'serial' needs the scanner's port in url")
        # A code in view is only seen once per decode period; a shorter window would report it
        # taken away and shown again between two decodes.
        period = 1.0 / self.decode_fps
        if self.driver == "camera" and self.gone_seconds < 2 * period:
            raise ValueError(
                f"gone_seconds ({self.gone_seconds}) is shorter than two decode periods "
                f"({2 * period:.2f} s at decode_fps {self.decode_fps})"
            )
        return self
