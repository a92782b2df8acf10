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
    def check(self, frame: Frame, face: Detection) -> LivenessResult:
        """Whether ``face`` in ``frame`` is a live person; the same answer for the same frame,
        and ``frame`` is left as it was (it may become evidence).

        A detection with nothing to judge (a box without area or wholly outside the frame) gets
        a result, not an exception: not live, score 0, from any check that judges at all.
        ``DriverError`` only when the check itself fails (its model cannot run).
        """
        ...


class AlwaysLive:
    """No liveness check (card + face where the configuration does not require one): live,
    score 1, whatever it is shown."""

    def check(self, frame: Frame, face: Detection) -> LivenessResult:
        return LivenessResult(True, 1.0)
