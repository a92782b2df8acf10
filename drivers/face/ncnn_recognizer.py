"""ArcFace-style embedding models in ncnn format (``.param`` graph + ``.bin`` weights).

ncnn (Tencent, BSD-3) is built for ARM NEON boards and reads the format in which small ArcFace
models such as MobileFaceNet are published; OpenCV cannot read it. The project ships no weights:
the site provides both files with their sha256 (docs/faces.md). The model id is derived from
both hashes, so templates of a different graph or different weights are never compared.

The crop is the standard five-point ArcFace alignment (:mod:`drivers.face.align`). Channel
order is part of the model: MobileFaceNet-ArcFace was trained on RGB, and feeding OpenCV's BGR
loses accuracy silently (no error, just lower scores), so the order is explicit in settings.

ncnn has no type information; it is loaded through :mod:`importlib` and used through the narrow
Protocols below (only the calls made here).
"""

import importlib
import threading
from typing import Protocol, cast

import numpy as np
import numpy.typing as npt

from drivers.camera.interface import Frame
from drivers.face.align import align
from drivers.face.interface import Detection
from drivers.face.settings import NcnnRecognizerSettings
from models.errors import DriverError
from models.matcher import Template, TemplateError


class _Mat(Protocol):
    def substract_mean_normalize(self, mean: list[float], norm: list[float]) -> None: ...


class _Extractor(Protocol):
    def input(self, name: str, mat: _Mat) -> int: ...
    def extract(self, name: str) -> tuple[int, _Mat]: ...


class _Option(Protocol):
    num_threads: int
    use_vulkan_compute: bool


class _Net(Protocol):
    opt: _Option

    def load_param(self, path: str) -> int: ...
    def load_model(self, path: str) -> int: ...
    def input_names(self) -> list[str]: ...
    def output_names(self) -> list[str]: ...
    def create_extractor(self) -> _Extractor: ...


class _PixelType(Protocol):
    PIXEL_BGR: int
    PIXEL_BGR2RGB: int


class _MatClass(Protocol):
    PixelType: _PixelType

    def from_pixels(self, array: Frame, pixel_type: int, w: int, h: int) -> _Mat: ...


class _Ncnn(Protocol):
    Mat: _MatClass

    def Net(self) -> _Net: ...  # noqa: N802 (ncnn's name)


def _import_ncnn() -> _Ncnn:
    try:
        return cast(_Ncnn, importlib.import_module("ncnn"))
    except ImportError as exc:
        raise DriverError("the ncnn recognizer needs the ncnn package: pip install ncnn") from exc


class NcnnRecognizer:
    """One ncnn network; extractions are serialised (one frame at a time per terminal is what
    the verifier does anyway, and it keeps ncnn's per-net workspace single-user)."""

    def __init__(self, settings: NcnnRecognizerSettings) -> None:
        self.settings = settings
        ncnn = _import_ncnn()
        param, weights = settings.verified()
        self._ncnn = ncnn
        net = ncnn.Net()
        net.opt.use_vulkan_compute = False
        net.opt.num_threads = settings.threads
        if net.load_param(str(param)) != 0:
            raise DriverError(f"ncnn graph {param.name} does not load (not an ncnn .param file?)")
        if net.load_model(str(weights)) != 0:
            raise DriverError(f"ncnn weights {weights.name} do not load or do not fit the graph")
        for blob, names in ((settings.input_blob, net.input_names()),
                            (settings.output_blob, net.output_names())):  # fmt: skip
            if blob not in names:
                raise DriverError(f"ncnn model {param.name} has no blob {blob!r} (has {names})")
        self._net = net
        self._model_id = settings.model_id()
        self._lock = threading.Lock()
        probe = np.zeros((settings.input_size, settings.input_size, 3), np.uint8)
        self.dim = int(self._forward(probe).size)

    @property
    def model_id(self) -> str:
        return self._model_id

    def _forward(self, crop: Frame) -> npt.NDArray[np.float32]:
        s = self.settings
        pixels = self._ncnn.Mat.PixelType
        kind = pixels.PIXEL_BGR2RGB if s.rgb else pixels.PIXEL_BGR
        mat = self._ncnn.Mat.from_pixels(
            np.ascontiguousarray(crop, np.uint8), kind, s.input_size, s.input_size
        )
        if s.mean != 0.0 or s.std != 1.0:
            mat.substract_mean_normalize([s.mean] * 3, [1.0 / s.std] * 3)
        with self._lock:
            extractor = self._net.create_extractor()
            extractor.input(s.input_blob, mat)
            status, out = extractor.extract(s.output_blob)
        if status != 0:
            raise DriverError(f"ncnn model {self._model_id} failed to run (status {status})")
        return np.array(out, np.float32).reshape(-1)

    def embed_crop(self, crop: Frame) -> Template:
        """The template of an already aligned ``input_size`` square crop (BGR)."""
        feature = _unit(self._forward(crop))
        if self.settings.flip:
            feature = feature + _unit(self._forward(np.ascontiguousarray(crop[:, ::-1])))
        try:
            return Template.of(self._model_id, feature)
        except TemplateError as exc:
            raise DriverError(
                f"recognizer {self._model_id} gave an unusable vector: {exc}"
            ) from exc

    def embed(self, frame: Frame, face: Detection) -> Template:
        return self.embed_crop(align(frame, face, self.settings.input_size))


def _unit(vector: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    # Each half of a flipped pair counts equally, whatever its norm; a zero vector stays zero
    # and is refused by Template.of.
    norm = float(np.linalg.norm(vector))
    return vector / np.float32(norm) if norm > 0 and np.isfinite(norm) else vector
