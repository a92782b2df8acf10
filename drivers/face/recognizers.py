"""ONNX recognizers run by OpenCV's DNN module: SFace, or any ArcFace-style embedding model.

Neither set of weights ships with the project: the operator (or HQ) provides the ``.onnx`` file
and its sha256 in the configuration (docs/faces.md). The model id of a template includes the
first 12 hex digits of the weights' hash, so templates from two different files are never
compared even if both are called "SFace".
"""

import threading

import cv2
import numpy as np

from drivers.camera.interface import Frame
from drivers.face.align import align
from drivers.face.interface import Detection
from drivers.face.modelfile import ModelFile
from drivers.face.settings import OnnxRecognizerSettings
from models.errors import DriverError
from models.matcher import Template, TemplateError


class SFaceRecognizer:
    """OpenCV Zoo's SFace (``face_recognition_sface_2021dec.onnx``, 128 values) via
    ``cv2.FaceRecognizerSF``, which applies SFace's own input normalisation."""

    def __init__(self, model: ModelFile) -> None:
        path = model.verified()
        try:
            self._net = cv2.FaceRecognizerSF.create(str(path), "")
            # The size of the vector is read from the model (SFace 2021dec: 128), not assumed.
            probe = self._net.feature(np.zeros((112, 112, 3), np.uint8))
        except cv2.error as exc:
            raise DriverError(f"SFace model {path.name} does not load: {exc}") from exc
        self.dim = int(np.asarray(probe).size)
        self._model_id = f"sface-{model.short_id()}"
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self._model_id

    def embed(self, frame: Frame, face: Detection) -> Template:
        # Same five reference points as FaceRecognizerSF.alignCrop, which needs mouth corners;
        # align() also works from eyes and nose alone (detectors without mouth corners).
        crop = align(frame, face, 112)
        with self._lock:
            feature = self._net.feature(crop)
        return _template(self._model_id, feature)


class OnnxRecognizer:
    def __init__(self, settings: OnnxRecognizerSettings) -> None:
        self.settings = settings
        path = settings.verified()
        try:
            self._net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as exc:
            raise DriverError(f"ONNX recognizer {path.name} does not load: {exc}") from exc
        self._model_id = f"onnx-{settings.short_id()}"
        self._lock = threading.Lock()
        probe = np.zeros((settings.input_size, settings.input_size, 3), np.uint8)
        self.dim = int(self._forward(probe).size)

    @property
    def model_id(self) -> str:
        return self._model_id

    def _forward(self, crop: Frame) -> np.ndarray:
        s = self.settings
        blob = cv2.dnn.blobFromImage(
            crop, 1.0 / s.std, (s.input_size, s.input_size), (s.mean, s.mean, s.mean), s.rgb
        )
        with self._lock:
            self._net.setInput(blob)
            out = self._net.forward()
        return np.asarray(out, np.float32).reshape(-1)

    def embed(self, frame: Frame, face: Detection) -> Template:
        return _template(
            self._model_id, self._forward(align(frame, face, self.settings.input_size))
        )


def _template(model_id: str, feature: np.ndarray) -> Template:
    try:
        return Template.of(model_id, np.asarray(feature, np.float32))
    except TemplateError as exc:
        raise DriverError(f"recognizer {model_id} gave an unusable vector: {exc}") from exc
