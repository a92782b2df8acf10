"""Five-point alignment for recognizers that expect an aligned crop (ArcFace-style ONNX models).

The reference points are the widely used 112 x 112 ArcFace template (subject's right eye, left
eye, nose tip, right and left mouth corner). A similarity transform (rotation, uniform scale,
shift) is fitted to the detected points; with no mouth corners only the eyes and nose are used.
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
    dtype=np.float32,
)


def _points(face: Detection) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    marks = face.landmarks
    source = [marks.right_eye, marks.left_eye, marks.nose]
    reference = ARCFACE_112[:3]
    if marks.mouth_right is not None and marks.mouth_left is not None:
        source += [marks.mouth_right, marks.mouth_left]
        reference = ARCFACE_112
    return np.asarray(source, np.float32), np.asarray(reference, np.float32)


def align(frame: Frame, face: Detection, size: int = 112) -> Frame:
    """The face warped onto the ``size`` x ``size`` template; ``DriverError`` if no fit."""
    source, reference = _points(face)
    matrix, _ = cv2.estimateAffinePartial2D(source, reference * (size / 112.0), method=cv2.LMEDS)
    if matrix is None:
        raise DriverError("face landmarks do not fit the alignment template")
    warped = cv2.warpAffine(frame, matrix, (size, size), borderValue=(0, 0, 0))
    return np.asarray(warped, dtype=np.uint8)
