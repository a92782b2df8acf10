"""The quality gate: is this face good enough to embed and match, and if not, why not?

A template from a tiny, blurred or turned face matches its owner worse and strangers better, so a
frame is judged before its template is trusted. The measures:

- **eye distance** in pixels (face size; ISO/IEC 19794-5 asks ≥ 60 px for enrolment photos; a
  gate camera works with less);
- **sharpness**: variance of the Laplacian of the face crop resized to 112 x 112 pixels, so the
  measure does not depend on how large the face is in the frame;
- **pose** from the five landmarks: roll is the angle of the eye line; yaw is how far the nose
  sits from the middle of the eyes, in eye distances (0 facing the camera, about ±0.35 at 45°);
  pitch is where the nose sits between the eyes and the mouth (about 0.5 facing the camera), when
  the detector gives mouth corners;
- the **detector's score**.

The reason a frame was rejected goes to the display and the diag CLI (:func:`message_zh`).
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

import cv2
import numpy as np

from drivers.camera.interface import Frame
from drivers.face.interface import Detection
from drivers.face.settings import QualitySettings

_BLUR_SIZE = 112
T = TypeVar("T")


class Rejection(StrEnum):
    """Why a frame (or an enrolment photo) was not used. Values are stable strings."""

    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"
    TOO_SMALL = "too_small"
    TOO_BLURRY = "too_blurry"
    POSE = "pose"
    LOW_SCORE = "low_score"


_MESSAGES: dict[Rejection, tuple[str, str]] = {
    Rejection.NO_FACE: ("未检测到人脸", "No face found"),
    Rejection.MULTIPLE_FACES: (
        "检测到多张人脸，请单人刷脸",
        "More than one face: one person at a time",
    ),
    Rejection.TOO_SMALL: ("请靠近一些", "Face too small: come closer"),
    Rejection.TOO_BLURRY: ("图像模糊，请保持不动", "Image blurred: hold still"),
    Rejection.POSE: ("请正对摄像头", "Please face the camera"),
    Rejection.LOW_SCORE: ("人脸不清晰", "Face not clear"),
}


def message_zh(rejection: Rejection) -> str:
    return _MESSAGES[rejection][0]


def message_en(rejection: Rejection) -> str:
    return _MESSAGES[rejection][1]


@dataclass(frozen=True, slots=True)
class Quality:
    """The measures of one face and what, if anything, is wrong with it."""

    eye_distance: float
    sharpness: float
    roll_degrees: float
    yaw: float
    pitch: float | None
    score: float
    rejections: tuple[Rejection, ...]

    @property
    def ok(self) -> bool:
        return not self.rejections

    @property
    def rank(self) -> float:
        """Orders acceptable faces for best-of-k: sharp, frontal and large first."""
        frontal = max(0.0, 1.0 - abs(self.yaw) * 2) * max(0.0, 1.0 - abs(self.roll_degrees) / 45)
        return (
            self.score * frontal * min(1.0, self.sharpness / 300) * min(1.0, self.eye_distance / 60)
        )


def sharpness(frame: Frame, box: tuple[float, float, float, float]) -> float:
    """Variance of the Laplacian over the face box, resized to 112 x 112 grey."""
    height, width = frame.shape[:2]
    x, y, w, h = box
    left, top = max(0, int(x)), max(0, int(y))
    right, bottom = min(width, math.ceil(x + w)), min(height, math.ceil(y + h))
    if right - left < 4 or bottom - top < 4:
        return 0.0
    crop = frame[top:bottom, left:right]
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    grey = cv2.resize(grey, (_BLUR_SIZE, _BLUR_SIZE), interpolation=cv2.INTER_AREA)
    return float(np.var(cv2.Laplacian(grey, cv2.CV_64F)))


def pose(face: Detection) -> tuple[float, float, float | None]:
    """``(roll_degrees, yaw, pitch)`` estimated from the landmarks (see the module docstring)."""
    marks = face.landmarks
    (rx, ry), (lx, ly) = marks.right_eye, marks.left_eye
    dx, dy = lx - rx, ly - ry
    eye_distance = math.hypot(dx, dy)
    if eye_distance < 1e-6:
        return 0.0, 1.0, None
    roll = math.degrees(math.atan2(dy, dx))
    cos, sin = dx / eye_distance, dy / eye_distance
    mid = ((rx + lx) / 2, (ry + ly) / 2)

    def upright(point: tuple[float, float]) -> tuple[float, float]:
        # Rotate about the eye midpoint so the eye line is horizontal.
        px, py = point[0] - mid[0], point[1] - mid[1]
        return (px * cos + py * sin, -px * sin + py * cos)

    nose_x, nose_y = upright(marks.nose)
    yaw = nose_x / eye_distance
    pitch = None
    if marks.mouth_right is not None and marks.mouth_left is not None:
        mouth_y = (upright(marks.mouth_right)[1] + upright(marks.mouth_left)[1]) / 2
        if mouth_y > 1e-6:
            pitch = nose_y / mouth_y
    return roll, yaw, pitch


def assess(frame: Frame, face: Detection, settings: QualitySettings) -> Quality:
    """Measure ``face`` and list every limit it fails (all of them, for the diag CLI)."""
    eye_distance = face.eye_distance
    sharp = sharpness(frame, face.box)
    roll, yaw, pitch = pose(face)
    rejections: list[Rejection] = []
    if eye_distance < settings.min_eye_distance:
        rejections.append(Rejection.TOO_SMALL)
    if sharp < settings.min_sharpness:
        rejections.append(Rejection.TOO_BLURRY)
    low, high = settings.pitch_range
    if (
        abs(roll) > settings.max_roll_degrees
        or abs(yaw) > settings.max_yaw
        or (pitch is not None and not low <= pitch <= high)
    ):
        rejections.append(Rejection.POSE)
    if face.score < settings.min_score:
        rejections.append(Rejection.LOW_SCORE)
    return Quality(eye_distance, sharp, roll, yaw, pitch, face.score, tuple(rejections))


def primary(faces: Iterable[Detection], frame: Frame) -> Detection | None:
    """The face the terminal is dealing with: the largest, ties broken by nearness to the centre.

    Deep-funnelled LFW photos and real gates both have bystanders; the person being served is
    the one nearest and most central.
    """
    height, width = frame.shape[:2]
    centre = (width / 2, height / 2)

    def key(face: Detection) -> tuple[float, float]:
        cx, cy = face.centre
        return (-face.eye_distance, math.hypot(cx - centre[0], cy - centre[1]))

    ordered = sorted(faces, key=key)
    return ordered[0] if ordered else None


def best_of(candidates: Iterable[tuple[Quality, T]]) -> tuple[Quality, T] | None:
    """The acceptable candidate of highest rank among those seen (best-of-k frames)."""
    best: tuple[Quality, T] | None = None
    for quality, item in candidates:
        if quality.ok and (best is None or quality.rank > best[0].rank):
            best = (quality, item)
    return best
