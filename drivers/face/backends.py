"""Building an encoder from settings, through an explicit mapping (no discovery by import).

Backends:

- ``onnx``: YuNet (OpenCV ``FaceDetectorYN``) for detection and landmarks, then the configured
  recognizer: ``ncnn`` (an ArcFace-style model in ncnn format, e.g. MobileFaceNet, with its
  landmarks refined on small faces), ``sface`` (OpenCV Zoo SFace through ``FaceRecognizerSF``),
  ``onnx`` (any ArcFace-style embedding model through OpenCV DNN) or ``dlib`` (dlib's ResNet on
  the YuNet face; the one recognizer whose weights come from a package rather than from the
  operator);
- ``dlib``: dlib's HOG detector and ResNet, as the face-recognition package runs them.
"""

import hashlib
from collections.abc import Callable

import cv2

from drivers.face.dlib_backend import DlibHogDetector, DlibModels, DlibRecognizer
from drivers.face.interface import Encoder, FaceRecognizer, LandmarkRefiner
from drivers.face.ncnn_recognizer import NcnnRecognizer
from drivers.face.recognizers import OnnxRecognizer, SFaceRecognizer
from drivers.face.settings import EncoderSettings
from drivers.face.yunet import YuNetDetector, YuNetRefiner
from models.errors import DriverError


class _Shared:
    """Loads dlib's models at most once per encoder build."""

    def __init__(self) -> None:
        self._dlib: DlibModels | None = None

    def dlib(self) -> DlibModels:
        if self._dlib is None:
            self._dlib = DlibModels()
        return self._dlib


def _sface(settings: EncoderSettings, shared: _Shared) -> FaceRecognizer:
    if settings.sface is None:
        raise DriverError("recognizer 'sface' needs the SFace model file (path and sha256)")
    return SFaceRecognizer(settings.sface)


def _onnx(settings: EncoderSettings, shared: _Shared) -> FaceRecognizer:
    if settings.onnx is None:
        raise DriverError("recognizer 'onnx' needs the ONNX model file (path and sha256)")
    return OnnxRecognizer(settings.onnx)


def _ncnn(settings: EncoderSettings, shared: _Shared) -> FaceRecognizer:
    if settings.ncnn is None:
        raise DriverError("recognizer 'ncnn' needs the .param and .bin files (paths and sha256)")
    return NcnnRecognizer(settings.ncnn)


def _dlib(settings: EncoderSettings, shared: _Shared) -> FaceRecognizer:
    return DlibRecognizer(shared.dlib())


RECOGNIZERS: dict[str, Callable[[EncoderSettings, _Shared], FaceRecognizer]] = {
    "ncnn": _ncnn,
    "sface": _sface,
    "onnx": _onnx,
    "dlib": _dlib,
}


# Raised whenever a change to detection, alignment or preprocessing alters templates without
# changing any setting or model file, so that cached encodings of the old code are not reused.
PIPELINE_REVISION = 2


def recipe(settings: EncoderSettings) -> str:
    """16 hex digits over everything that shapes the templates (see :attr:`Encoder.recipe`)."""
    text = f"{PIPELINE_REVISION}:{settings!r}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_encoder(settings: EncoderSettings) -> Encoder:
    """The configured encoder; ``DriverError`` naming what is missing when it cannot be built."""
    shared = _Shared()
    if settings.backend == "dlib":
        models = shared.dlib()
        hog = DlibHogDetector(models, settings.dlib_hog)
        return Encoder("dlib", hog, DlibRecognizer(models), recipe=recipe(settings))
    if settings.yunet is None:
        raise DriverError("backend 'onnx' needs the YuNet model file (path and sha256)")
    detector = YuNetDetector(settings.yunet)
    recognizer = RECOGNIZERS[settings.recognizer](settings, shared)
    refiner: LandmarkRefiner | None = None
    if settings.refine is not None:
        refiner = YuNetRefiner(settings.yunet, settings.refine)
    return Encoder("onnx", detector, recognizer, refiner, recipe(settings))


def limit_threads(count: int) -> None:
    """Cap OpenCV's own thread pool (YuNet), e.g. in worker processes that already fill every
    core; ncnn's threads are set per recognizer."""
    cv2.setNumThreads(count)
