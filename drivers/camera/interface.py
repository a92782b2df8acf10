"""The camera interface the face pipeline programs against."""

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from drivers.interfaces import Health

# An image as OpenCV holds it: height x width x 3, uint8, BGR channel order.
Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True, eq=False)
class CapturedFrame:
    """One frame: ``seq`` grows by at least one per new frame; ``at`` is monotonic seconds."""

    image: Frame
    seq: int
    at: float


class Camera(Protocol):
    """A source of frames that always hands out the newest one (never a backlog).

    A face at a gate is judged on what the camera sees now: a queue of stale frames would make
    the terminal answer for the person who stood there a second ago.
    """

    def latest(self, after: int = -1, timeout: float = 0.0) -> CapturedFrame | None:
        """The newest frame whose ``seq`` is above ``after``, waiting up to ``timeout`` seconds
        for one; ``None`` when none arrived (camera unplugged, still connecting)."""
        ...

    def health(self) -> Health: ...

    def close(self) -> None:
        """Stop the camera: ``latest`` then raises :class:`~models.errors.DriverError` (never the
        last frame again), ``health`` is not ok; closing twice is harmless."""
        ...
