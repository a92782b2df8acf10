"""What a camera is configured with: the config's ``[faces.camera]`` section itself.

Apart from ``opencv`` (which imports OpenCV) so that the config can be read, checked and
documented without it; the simulated camera takes its frame size from the same section.
"""

from typing import Literal

from pydantic import Field

from models.settings import Section


class CameraSettings(Section):
    """The camera that looks at the person at the reader."""

    driver: Literal["opencv", "sim"] = Field(
        "opencv", description="opencv: a V4L2 device, file or stream; sim: the demo's camera."
    )
    source: int | str = Field(
        0, description="Device index (0 = /dev/video0), device path, or stream URL."
    )
    width: int = Field(640, ge=160, le=1920, description="Frame width requested and delivered.")
    height: int = Field(480, ge=120, le=1080, description="Frame height requested and delivered.")
    fps: float = Field(15.0, gt=0, le=60, description="Frames per second requested.")
    stall_seconds: float = Field(
        2.0, gt=0, description="No frame for this long counts as unplugged: reopen the camera."
    )
    reconnect_first_seconds: float = Field(
        0.5, gt=0, le=60, description="First wait before reopening a camera that failed."
    )
    reconnect_max_seconds: float = Field(
        10.0, gt=0, le=300, description="Cap of the doubling wait between reopening attempts."
    )
