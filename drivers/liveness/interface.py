"""The liveness check the face verifier calls on the frame it is about to accept."""

from dataclasses import dataclass
from typing import Protocol

from drivers.camera.interface import Frame
from drivers.face.interface import Detection


@dataclass(frozen=True, slots=True)
class LivenessResult:
    """``score``: the probability the face is real, as the check estimates it (0..1)."""

    live: bool
    score: float


class LivenessCheck(Protocol):
    def check(self, frame: Frame, face: Detection) -> LivenessResult: ...


class AlwaysLive:
    """No liveness check (card + face where the configuration does not require one)."""

    def check(self, frame: Frame, face: Detection) -> LivenessResult:
        return LivenessResult(True, 1.0)
