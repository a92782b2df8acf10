"""OpenCV's YuNet face detector (``cv2.FaceDetectorYN``): box, five landmarks and a score.

YuNet is small (230 KB, MIT) and fast on a CPU; it finds faces of about 10 to 300 pixels, so
frames wider than ``max_width`` are downscaled first and the results scaled back.
"""

import threading
from typing import cast

import cv2
import numpy as np

from drivers.camera.interface import Frame
from drivers.face.interface import Detection, Landmarks
from drivers.face.settings import RefineSettings, YuNetSettings
from models.errors import DriverError

# OpenCV Zoo's face_detection_yunet_2023mar.onnx (MIT); the file itself is not shipped.
YUNET_2023MAR_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


class YuNetDetector:
    def __init__(self, settings: YuNetSettings) -> None:
        self.settings = settings
        path = settings.verified()
        try:
            self._net = cv2.FaceDetectorYN.create(
                str(path),
                "",
                (320, 320),
                settings.score_threshold,
                settings.nms_threshold,
                settings.top_k,
            )
        except cv2.error as exc:
            raise DriverError(f"YuNet model {path.name} does not load: {exc}") from exc
        self._size = (320, 320)
        # The OpenCV object keeps per-size buffers: one frame at a time.
        self._lock = threading.Lock()

    def detect(self, frame: Frame) -> list[Detection]:
        height, width = frame.shape[:2]
        scale = 1.0
        image = frame
        if width > self.settings.max_width:
            scale = self.settings.max_width / width
            image = np.asarray(
                cv2.resize(frame, (self.settings.max_width, round(height * scale))), np.uint8
            )
        size = (image.shape[1], image.shape[0])
        with self._lock:
            if size != self._size:
                self._net.setInputSize(size)
                self._size = size
            # The stubs say a matrix; with no face OpenCV returns None.
            faces = cast(np.ndarray | None, self._net.detect(image)[1])
        if faces is None:
            return []
        return [_detection(row / np.float32(scale), float(row[14])) for row in faces]


def _detection(row: np.ndarray, score: float) -> Detection:
    values = [float(v) for v in row[:14]]

    def point(i: int) -> tuple[float, float]:
        return (values[i], values[i + 1])

    landmarks = Landmarks(point(4), point(6), point(8), point(10), point(12))
    return Detection((values[0], values[1], values[2], values[3]), landmarks, score)


class YuNetRefiner:
    """A :class:`~drivers.face.interface.LandmarkRefiner` with its own YuNet instance, so its
    fixed input size does not make the frame detector resize its buffers every frame."""

    def __init__(self, model: YuNetSettings, settings: RefineSettings | None = None) -> None:
        self.settings = settings or RefineSettings()
        size = self.settings.size
        self._detector = YuNetDetector(model.model_copy(update={"top_k": 5, "max_width": size}))

    def refine(self, frame: Frame, face: Detection) -> Detection:
        s = self.settings
        if face.eye_distance >= s.below or face.eye_distance <= 0:
            return face
        x, y, w, h = face.box
        scale = s.size / (s.context * max(w, h, 1.0))
        shift = (s.size / 2 - scale * (x + w / 2), s.size / 2 - scale * (y + h / 2))
        matrix = np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]], np.float64)
        crop = cv2.warpAffine(frame, matrix, (s.size, s.size), flags=cv2.INTER_CUBIC)
        found = self._detector.detect(np.asarray(crop, np.uint8))
        if not found:
            return face
        centre = s.size / 2
        best = min(found, key=lambda f: (f.centre[0] - centre) ** 2 + (f.centre[1] - centre) ** 2)
        refined = _mapped(best, scale, shift, face.score)
        # A different face in the enlarged region (a bystander cheek to cheek) is not a refinement.
        if _distance(_eye_mid(refined), _eye_mid(face)) > 0.5 * face.eye_distance:
            return face
        return refined


def _mapped(face: Detection, scale: float, shift: tuple[float, float], score: float) -> Detection:
    def back(p: tuple[float, float]) -> tuple[float, float]:
        return ((p[0] - shift[0]) / scale, (p[1] - shift[1]) / scale)

    m = face.landmarks
    x, y = back((face.box[0], face.box[1]))
    box = (x, y, face.box[2] / scale, face.box[3] / scale)
    marks = Landmarks(
        back(m.right_eye),
        back(m.left_eye),
        back(m.nose),
        None if m.mouth_right is None else back(m.mouth_right),
        None if m.mouth_left is None else back(m.mouth_left),
    )
    return Detection(box, marks, score)


def _eye_mid(face: Detection) -> tuple[float, float]:
    (x1, y1), (x2, y2) = face.landmarks.right_eye, face.landmarks.left_eye
    return ((x1 + x2) / 2, (y1 + y2) / 2)


def _distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5)
