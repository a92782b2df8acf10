"""dlib's face pipeline (what the face-recognition package runs): HOG detector, 5-point shape
predictor, ResNet-29 metric network giving 128 values.

The model files come from the ``face-recognition-models`` package. They are located without
importing that package: its ``__init__`` imports ``pkg_resources``, which setuptools 81 removed,
and ``face_recognition`` answers that ImportError by printing a hint and calling ``quit()`` —
exit status 0, which would turn a test run into a silent success. :func:`import_face_recognition`
turns that into a :class:`DriverError`; the encoder here does not need the package at all.

dlib has no type information, so it is loaded through :mod:`importlib` and used through the
narrow Protocols below (only the calls made here).
"""

import importlib
import importlib.util
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Protocol, cast

import cv2
import numpy as np

from drivers.camera.interface import Frame
from drivers.face.interface import Detection, Landmarks
from drivers.face.settings import DLIB_MODEL_ID, DlibHogSettings
from models.errors import DriverError
from models.matcher import Template

MODEL_ID = DLIB_MODEL_ID
_SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
_RESNET = "dlib_face_recognition_resnet_model_v1.dat"
# dlib's shape predictor was trained on HOG boxes: square, about 2.4 eye distances wide and
# centred between the eyes and the mouth (measured on 296 lfw-dev photos where both detectors
# found the face). Boxes from other detectors are converted to that before predicting.
_HOG_BOX_EYE_DISTANCES = 2.4


class _Rect(Protocol):
    def left(self) -> int: ...
    def top(self) -> int: ...
    def right(self) -> int: ...
    def bottom(self) -> int: ...


class _Point(Protocol):
    x: int
    y: int


class _Shape(Protocol):
    def part(self, index: int) -> _Point: ...


class _Detector(Protocol):
    def run(
        self, image: Frame, upsample: int, adjust_threshold: float
    ) -> tuple[Sequence[_Rect], Sequence[float], Sequence[int]]: ...


class _ShapePredictor(Protocol):
    def __call__(self, image: Frame, box: _Rect) -> _Shape: ...


class _FaceRecognition(Protocol):
    def compute_face_descriptor(
        self, image: Frame, shape: _Shape, num_jitters: int = 0, padding: float = 0.25
    ) -> Sequence[float]: ...


class _Dlib(Protocol):
    def get_frontal_face_detector(self) -> _Detector: ...
    def shape_predictor(self, path: str) -> _ShapePredictor: ...
    def face_recognition_model_v1(self, path: str) -> _FaceRecognition: ...
    def rectangle(self, left: int, top: int, right: int, bottom: int) -> _Rect: ...


def _import_dlib() -> _Dlib:
    try:
        return cast(_Dlib, importlib.import_module("dlib"))
    except ImportError as exc:
        raise DriverError(
            "the dlib face backend needs dlib: pip install dlib-bin (prebuilt; 'pip install "
            "dlib' compiles for about 9 minutes)"
        ) from exc


def models_dir() -> Path:
    """The ``models`` folder of the face-recognition-models package, found without importing it."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DriverError("the dlib face backend needs pip install face-recognition-models")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    for name in (_SHAPE_5, _RESNET):
        if not (folder / name).is_file():
            raise DriverError(f"face-recognition-models is incomplete: {name} missing")
    return folder


def import_face_recognition() -> ModuleType:
    """``import face_recognition``, with its quit-on-import failure turned into an error."""
    try:
        return importlib.import_module("face_recognition")
    except SystemExit as exc:
        raise DriverError(
            "face_recognition quit while importing (exit status 0): its models package could "
            "not be imported, usually because setuptools >= 81 has no pkg_resources; install "
            "'setuptools<81'"
        ) from exc
    except ImportError as exc:
        raise DriverError(f"face_recognition is not installed: {exc}") from exc


class DlibModels:
    """The loaded dlib objects, shared by the detector and the recognizer (100+ MB otherwise
    twice). Calls into dlib are serialised: its objects are not documented as thread-safe."""

    def __init__(self) -> None:
        dlib = _import_dlib()
        folder = models_dir()
        self.dlib = dlib
        self.hog = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(folder / _SHAPE_5))
        self.resnet = dlib.face_recognition_model_v1(str(folder / _RESNET))
        self.lock = threading.Lock()

    def rect(self, box: tuple[float, float, float, float]) -> _Rect:
        x, y, w, h = box
        return self.dlib.rectangle(round(x), round(y), round(x + w), round(y + h))


def _rgb(frame: Frame) -> Frame:
    return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def _landmarks(shape: _Shape) -> Landmarks:
    # dlib's 5 points: 0-1 corners of the eye on the image's right, 2-3 of the other eye,
    # 4 the base of the nose. No mouth corners.
    def mean(a: int, b: int) -> tuple[float, float]:
        pa, pb = shape.part(a), shape.part(b)
        return ((pa.x + pb.x) / 2.0, (pa.y + pb.y) / 2.0)

    nose = shape.part(4)
    return Landmarks(mean(2, 3), mean(0, 1), (float(nose.x), float(nose.y)))


class DlibHogDetector:
    def __init__(self, models: DlibModels, settings: DlibHogSettings | None = None) -> None:
        self.models = models
        self.settings = settings or DlibHogSettings()

    def detect(self, frame: Frame) -> list[Detection]:
        height, width = frame.shape[:2]
        scale = min(1.0, self.settings.max_width / width)
        small = frame
        if scale < 1.0:
            small = np.asarray(cv2.resize(frame, (round(width * scale), round(height * scale))))
        rgb, full = _rgb(small), _rgb(frame)
        found: list[Detection] = []
        with self.models.lock:
            rects, scores, _ = self.models.hog.run(
                rgb, self.settings.upsample, self.settings.adjust_threshold
            )
            for rect, raw in zip(rects, scores, strict=True):
                box = (
                    rect.left() / scale,
                    rect.top() / scale,
                    (rect.right() - rect.left()) / scale,
                    (rect.bottom() - rect.top()) / scale,
                )
                shape = self.models.shape(full, self.models.rect(box))
                # The SVM margin (about -0.5..3) squashed to 0..1 so one score limit fits both
                # detectors: 0.5 at the detector's own threshold.
                score = 1.0 / (1.0 + math.exp(-2.0 * float(raw)))
                found.append(Detection(box, _landmarks(shape), score))
        return found


class DlibRecognizer:
    """dlib's ResNet (99.38 % on LFW per its authors). Works after any detector: a box from
    another detector is first converted to the HOG-style box the shape predictor expects."""

    dim = 128

    def __init__(self, models: DlibModels) -> None:
        self.models = models

    @property
    def model_id(self) -> str:
        return MODEL_ID

    def _box(self, face: Detection) -> tuple[float, float, float, float]:
        marks = face.landmarks
        if marks.mouth_right is None or marks.mouth_left is None:
            return face.box  # already a dlib box (no mouth corners: the HOG path)
        points = np.array(
            [marks.right_eye, marks.left_eye, marks.mouth_right, marks.mouth_left], np.float64
        )
        cx, cy = (points[:2].mean(axis=0) + points[2:].mean(axis=0)) / 2
        side = _HOG_BOX_EYE_DISTANCES * face.eye_distance
        return (cx - side / 2, cy - side / 2, side, side)

    def embed(self, frame: Frame, face: Detection) -> Template:
        rgb = _rgb(frame)
        with self.models.lock:
            shape = self.models.shape(rgb, self.models.rect(self._box(face)))
            values = self.models.resnet.compute_face_descriptor(rgb, shape, 0, 0.25)
        return Template.of(MODEL_ID, np.asarray(values, np.float32))
