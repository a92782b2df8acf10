"""OpenCV's YuNet face detector (``cv2.FaceDetectorYN``): box, five landmarks and a score.

YuNet is small (230 KB, MIT) and fast on a CPU; it finds faces of about 10 to 300 pixels, so
frames wider than ``max_width`` are downscaled first and the results scaled back.
"""

import threading
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from drivers.camera.interface import Frame
from drivers.face.interface import Detection, Landmarks
from drivers.face.modelfile import ModelFile
from models.errors import DriverError

# OpenCV Zoo's face_detection_yunet_2023mar.onnx (MIT); the file itself is not shipped.
YUNET_2023MAR_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"


@dataclass(frozen=True, slots=True)
class YuNetSettings:
    model: ModelFile
    score_threshold: float = 0.6
    nms_threshold: float = 0.3
    top_k: int = 50
    max_width: int = 640


class YuNetDetector:
    def __init__(self, settings: YuNetSettings) -> None:
        self.settings = settings
        path = settings.model.verified()
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
