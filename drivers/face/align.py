"""Five-point alignment for recognizers that expect an aligned crop (ArcFace-style models).

The reference points are the standard 112 x 112 ArcFace template (subject's right eye, left
eye, nose tip, right and left mouth corner) that InsightFace's models were trained on. The
similarity transform (rotation, uniform scale, shift) is the least-squares fit of all the points,
as InsightFace fits it (Umeyama): a robust fit (LMEDS) would keep the two or three points that
agree best and let the others land wherever, so the crop would no longer be the one the model
was trained on. With no mouth corners (dlib's detector) only the eyes and nose are used.
"""

import cv2
import numpy as np
import numpy.typing as npt

from drivers.camera.interface import Frame
from drivers.face.interface import Detection
from models.errors import DriverError

ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)

# Landmarks closer together than this (pixels) give no usable scale or rotation.
_MIN_SPREAD = 1.0


def points(face: Detection) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The detected points and the reference points they map onto, in the same order."""
    marks = face.landmarks
    source = [marks.right_eye, marks.left_eye, marks.nose]
    reference = ARCFACE_112[:3]
    if marks.mouth_right is not None and marks.mouth_left is not None:
        source += [marks.mouth_right, marks.mouth_left]
        reference = ARCFACE_112
    return np.asarray(source, np.float64), np.asarray(reference, np.float64)


def similarity(
    source: npt.NDArray[np.float64], reference: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The 2 x 3 similarity matrix mapping ``source`` onto ``reference`` with the least squared
    error. ``x' = a·x − b·y + tx, y' = b·x + a·y + ty`` is linear in ``(a, b, tx, ty)``, so the
    fit is one linear least-squares solve (the same optimum as Umeyama's method without
    reflection)."""
    if source.shape != reference.shape or source.shape[0] < 2:
        raise DriverError("alignment needs at least two matching points")
    spread = np.ptp(source, axis=0).max()
    if not np.isfinite(source).all() or spread < _MIN_SPREAD:
        raise DriverError("face landmarks do not fit the alignment template")
    x, y = source[:, 0], source[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    design = np.vstack(
        [np.column_stack([x, -y, ones, zeros]), np.column_stack([y, x, zeros, ones])]
    )
    target = np.concatenate([reference[:, 0], reference[:, 1]])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, target, rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]], np.float64)


def align(frame: Frame, face: Detection, size: int = 112) -> Frame:
    """The face warped onto the ``size`` x ``size`` template; ``DriverError`` if no fit."""
    source, reference = points(face)
    matrix = similarity(source, reference * (size / 112.0))
    warped = cv2.warpAffine(frame, matrix, (size, size), borderValue=(0, 0, 0))
    return np.asarray(warped, dtype=np.uint8)
