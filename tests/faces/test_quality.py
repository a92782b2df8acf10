"""The quality gate: each limit on constructed faces, and on real photos made worse."""

import cv2
import numpy as np
import pytest

from drivers.face.interface import Detection, Encoder, Landmarks
from drivers.face.quality import Rejection, assess, best_of, message_en, message_zh, pose, primary
from drivers.face.settings import QualitySettings
from tests.faces.conftest import PERSON_A, photo

GATE = QualitySettings()


def face(
    eyes: tuple[tuple[float, float], tuple[float, float]] = ((100, 100), (140, 100)),
    nose: tuple[float, float] = (120, 120),
    mouth: tuple[tuple[float, float], tuple[float, float]] | None = ((105, 140), (135, 140)),
    score: float = 0.9,
    box: tuple[float, float, float, float] = (80, 70, 80, 100),
) -> Detection:
    marks = Landmarks(eyes[0], eyes[1], nose, *(mouth or (None, None)))
    return Detection(box, marks, score)


def textured(size: int = 240) -> np.ndarray:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    return np.asarray(cv2.GaussianBlur(noise, (3, 3), 0), np.uint8)


def test_a_frontal_face_has_no_roll_or_yaw_and_middling_pitch() -> None:
    roll, yaw, pitch = pose(face())
    assert roll == pytest.approx(0) and yaw == pytest.approx(0)
    assert pitch == pytest.approx(0.5)


def test_a_tilted_head_is_measured_as_roll_not_yaw() -> None:
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    c = np.array([120.0, 120.0])

    def r(p: tuple[float, float]) -> tuple[float, float]:
        x, y = rot @ (np.array(p) - c) + c
        return (float(x), float(y))

    tilted = face(eyes=(r((100, 100)), r((140, 100))), nose=r((120, 120)),
                  mouth=(r((105, 140)), r((135, 140))))  # fmt: skip
    roll, yaw, pitch = pose(tilted)
    assert roll == pytest.approx(30, abs=1e-6)
    assert yaw == pytest.approx(0, abs=1e-6) and pitch == pytest.approx(0.5)
    assert Rejection.POSE in assess(textured(), tilted, GATE).rejections


def test_each_limit_names_its_rejection() -> None:
    image = textured()
    assert assess(image, face(), GATE).ok
    small = face(eyes=((110, 100), (125, 100)), nose=(117, 110), mouth=((112, 118), (123, 118)))
    assert assess(image, small, GATE).rejections == (Rejection.TOO_SMALL,)
    turned = face(nose=(137, 120))  # nose far towards one eye: head turned
    assert assess(image, turned, GATE).rejections == (Rejection.POSE,)
    nodding = face(nose=(120, 137))  # nose almost at the mouth: head tipped down
    assert assess(image, nodding, GATE).rejections == (Rejection.POSE,)
    assert assess(image, face(score=0.3), GATE).rejections == (Rejection.LOW_SCORE,)
    flat = np.full((240, 240, 3), 128, np.uint8)
    assert assess(flat, face(), GATE).rejections == (Rejection.TOO_BLURRY,)
    # dlib gives no mouth corners: pitch is then not judged.
    assert assess(image, face(mouth=None), GATE).pitch is None


def test_every_rejection_has_words_for_the_display() -> None:
    for rejection in Rejection:
        assert message_zh(rejection) and message_en(rejection)


def test_a_real_photo_blurred_or_shrunk_is_rejected(onnx_encoder: Encoder) -> None:
    image = photo(PERSON_A[1])
    found = primary(onnx_encoder.detect(image), image)
    assert found is not None
    sharp = assess(image, found, GATE)
    assert sharp.ok, sharp
    blurred = np.asarray(cv2.GaussianBlur(image, (0, 0), 4), np.uint8)
    assert Rejection.TOO_BLURRY in assess(blurred, found, GATE).rejections
    assert assess(blurred, found, GATE).sharpness < sharp.sharpness / 4
    tiny = np.asarray(cv2.resize(image, (100, 100)), np.uint8)
    small_face = primary(onnx_encoder.detect(tiny), tiny)
    if small_face is not None:  # YuNet may not even find a face that small
        assert Rejection.TOO_SMALL in assess(tiny, small_face, GATE).rejections


def test_best_of_k_takes_the_best_acceptable_frame() -> None:
    image = textured()
    good = assess(image, face(), GATE)
    turned_a_bit = assess(image, face(nose=(126, 120)), GATE)
    bad = assess(image, face(score=0.1), GATE)
    assert good.rank > turned_a_bit.rank
    chosen = best_of([(turned_a_bit, "b"), (bad, "c"), (good, "a")])
    assert chosen is not None and chosen[1] == "a"
    assert best_of([(bad, "c")]) is None


def test_the_face_dealt_with_is_the_largest() -> None:
    image = textured()
    near = face()
    far = face(eyes=((10, 10), (25, 10)), nose=(17, 18), box=(0, 0, 30, 40))
    assert primary([far, near], image) is near
    assert primary([], image) is None
