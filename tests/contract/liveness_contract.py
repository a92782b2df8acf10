"""The LivenessCheck contract: what the face verifier may rely on, whichever check it was given.

What every implementation of :class:`drivers.liveness.interface.LivenessCheck` promises:

- ``check`` returns a :class:`~drivers.liveness.interface.LivenessResult` whose ``live`` is a
  ``bool`` and whose ``score`` is a finite ``float`` in 0..1, for a real face, for a face at the
  edge of the frame and for a frame with no face in it (a grey, black or white wall, noise);
- the same frame gives the same result, whatever was checked in between, and a copy of the
  frame the same as the original;
- the frame is left as it was (the verifier keeps it as evidence);
- a detection with nothing to judge (a box of no area, inverted, wholly outside the frame, not
  finite, or an empty frame) gives a result, not an exception;
- a check that judges at all (every one but :class:`~drivers.liveness.interface.AlwaysLive`)
  says not live, score 0, for nothing to judge, and not live for a blank wall.

Run on :class:`~drivers.liveness.interface.AlwaysLive` and on
:class:`~drivers.liveness.runner.MiniFASNetLiveness` with the published weights from ../shared
(skipped, saying what is missing, without them) in tests/contract/test_liveness.py.
"""

import math
from typing import Protocol

import numpy as np

from drivers.camera.interface import Frame
from drivers.face.interface import Detection, Landmarks
from drivers.liveness.interface import LivenessCheck, LivenessResult

Box = tuple[float, float, float, float]


class LivenessHarness(Protocol):
    check: LivenessCheck
    judges: bool  # False for a check that answers live whatever it is shown

    def face(self) -> tuple[Frame, Detection]:
        """A frame with a face in it and that face's detection."""
        ...


def detection(box: Box) -> Detection:
    x, y, w, h = box
    eyes_y = y + h * 0.4
    return Detection(
        box,
        Landmarks(
            right_eye=(x + w * 0.3, eyes_y),
            left_eye=(x + w * 0.7, eyes_y),
            nose=(x + w * 0.5, y + h * 0.6),
            mouth_right=(x + w * 0.35, y + h * 0.8),
            mouth_left=(x + w * 0.65, y + h * 0.8),
        ),
        0.9,
    )


def walls() -> dict[str, Frame]:
    """Frames with no face in them, 640 x 480."""
    return {
        "grey": np.full((480, 640, 3), 96, np.uint8),
        "black": np.zeros((480, 640, 3), np.uint8),
        "white": np.full((480, 640, 3), 255, np.uint8),
    }


def noise() -> Frame:
    return np.random.default_rng(7).integers(0, 256, (480, 640, 3), dtype=np.uint8)


CENTRE: Box = (270.0, 170.0, 100.0, 130.0)  # where a face would be in a 640 x 480 frame
NOTHING_TO_JUDGE: dict[str, Box] = {
    "no area": (300.0, 200.0, 0.0, 0.0),
    "no width": (300.0, 200.0, 0.0, 80.0),
    "inverted": (300.0, 200.0, -40.0, -40.0),
    "right of the frame": (700.0, 200.0, 80.0, 80.0),
    "below the frame": (300.0, 500.0, 80.0, 80.0),
    "left of the frame": (-200.0, 200.0, 80.0, 80.0),
    "above the frame": (300.0, -200.0, 80.0, 80.0),
    "not finite": (math.nan, 200.0, 80.0, 80.0),
}


def assert_a_result(result: object, what: str) -> LivenessResult:
    assert type(result) is LivenessResult, f"{what}: {result!r}"
    assert type(result.live) is bool, f"{what}: live is {type(result.live).__name__}"
    assert type(result.score) is float, f"{what}: score is {type(result.score).__name__}"
    assert math.isfinite(result.score) and 0.0 <= result.score <= 1.0, f"{what}: {result}"
    return result


class LivenessContract:
    """Subclass as ``Test...`` with a ``harness`` fixture that yields a ready harness."""

    def test_every_answer_is_a_result_with_a_score_in_0_1(self, harness: LivenessHarness) -> None:
        frame, face = harness.face()
        assert_a_result(harness.check.check(frame, face), "a face")
        for name, wall in {**walls(), "noise": noise()}.items():
            assert_a_result(harness.check.check(wall, detection(CENTRE)), name)

    def test_a_face_at_the_edge_of_the_frame_is_judged(self, harness: LivenessHarness) -> None:
        # A detector reports a face cut by the frame's edge with a box reaching past it.
        frame, face = harness.face()
        x, y, w, h = face.box
        cut = int(x + w / 2)
        shifted = detection((x - cut, y, w, h))
        assert_a_result(harness.check.check(np.ascontiguousarray(frame[:, cut:]), shifted), "edge")

    def test_the_same_frame_gives_the_same_result(self, harness: LivenessHarness) -> None:
        frame, face = harness.face()
        first = harness.check.check(frame, face)
        harness.check.check(noise(), detection(CENTRE))  # something else in between
        assert harness.check.check(frame.copy(), face) == first
        assert harness.check.check(frame, face) == first
        wall = walls()["grey"]
        assert harness.check.check(wall, detection(CENTRE)) == harness.check.check(
            wall.copy(), detection(CENTRE)
        )

    def test_the_frame_is_left_as_it_was(self, harness: LivenessHarness) -> None:
        frame, face = harness.face()
        kept = frame.copy()
        harness.check.check(frame, face)
        assert np.array_equal(frame, kept)

    def test_a_frame_without_a_face_is_a_result(self, harness: LivenessHarness) -> None:
        for name, wall in walls().items():
            result = assert_a_result(harness.check.check(wall, detection(CENTRE)), name)
            if harness.judges:
                assert not result.live, f"a {name} wall judged live: {result}"

    def test_nothing_to_judge_is_a_result_not_an_exception(self, harness: LivenessHarness) -> None:
        # Noise, which a model may well call live where there is a box to judge.
        frame = noise()
        inputs = [(f"box {name}", frame, detection(box)) for name, box in NOTHING_TO_JUDGE.items()]
        inputs.append(("empty frame", np.zeros((0, 0, 3), np.uint8), detection(CENTRE)))
        for what, image, face in inputs:
            result = assert_a_result(harness.check.check(image, face), what)
            if harness.judges:
                assert result == LivenessResult(False, 0.0), f"{what}: {result}"
