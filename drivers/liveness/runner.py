"""MiniFASNet liveness on the terminal: the exported ONNX models run by OpenCV DNN.

Each model looks at the face box enlarged by its own scale (2.7 and 4.0 for the published pair:
the wider crop shows the edges of a phone or a printed sheet), resized to 80 x 80, BGR, 0..255,
not normalised. Each gives three logits; their softmaxes are summed; class 1 is a real face.
The fused score is the mean probability of class 1, and the face is live when class 1 wins and
the score reaches the threshold.

The ONNX files are exported from the configured ``.pth`` weights into ``cache_dir`` (see
:mod:`drivers.liveness.minifasnet`); when an export is missing and torch is not installed (as on
a terminal), construction fails with the command that produces it.
"""

import importlib.util
import math
import re
import threading
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from drivers.camera.interface import Frame
from drivers.face.interface import Detection
from drivers.face.modelfile import ModelFile
from drivers.liveness.interface import LivenessResult
from drivers.liveness.settings import MiniFASNetSettings
from models.errors import DriverError

_INPUT = 80
_SCALE_IN_NAME = re.compile(r"^(\d+(?:\.\d+)?)(?:_\d+)*_\d+x\d+_")


def scale_from_name(name: str) -> float:
    """The crop scale in a weights file name: ``2.7_80x80_...`` -> 2.7, ``4_0_0_80x80_...`` -> 4."""
    match = _SCALE_IN_NAME.match(name)
    if match is None:
        raise DriverError(f"cannot read the crop scale from the file name {name!r}")
    return float(match.group(1))


def crop_box(
    box: tuple[float, float, float, float], scale: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """The face box enlarged ``scale`` times about its centre; where that leaves the frame the
    scale is reduced to fit and the box shifted inside. Returns left, top, right, bottom."""
    x, y, w, h = box
    scale = min(scale, (height - 1) / max(h, 1.0), (width - 1) / max(w, 1.0))
    new_w, new_h = w * scale, h * scale
    cx, cy = x + w / 2, y + h / 2
    left, top = cx - new_w / 2, cy - new_h / 2
    left = min(max(left, 0.0), width - 1 - new_w)
    top = min(max(top, 0.0), height - 1 - new_h)
    return int(left), int(top), int(left + new_w), int(top + new_h)


def has_area_in(box: tuple[float, float, float, float], frame: Frame) -> bool:
    """Whether the face box ``(x, y, w, h)`` covers some of the frame."""
    height, width = frame.shape[:2]
    x, y, w, h = box
    if not all(math.isfinite(v) for v in box) or w <= 0 or h <= 0:
        return False
    return x < width and y < height and x + w > 0 and y + h > 0


def _exported(model: ModelFile, cache_dir: Path) -> Path:
    weights = model.verified()
    target = cache_dir / f"minifasnet-{model.sha256.lower()[:16]}.onnx"
    if target.is_file():
        return target
    if importlib.util.find_spec("torch") is None:
        raise DriverError(
            f"no ONNX export of {weights.name} in {cache_dir}; on a machine with torch run "
            f"'python -m drivers.liveness.minifasnet {weights.name} --out {cache_dir}' "
            "and copy the .onnx file here"
        )
    from drivers.liveness import minifasnet  # noqa: PLC0415 - torch only when exporting

    return minifasnet.export(weights, cache_dir)


class MiniFASNetLiveness:
    def __init__(self, settings: MiniFASNetSettings) -> None:
        if not settings.models:
            raise DriverError("liveness needs at least one MiniFASNet weights file")
        self.settings = settings
        self._nets: list[tuple[float, cv2.dnn.Net]] = []
        for model in settings.models:
            path = _exported(model, settings.cache_dir)
            try:
                net = cv2.dnn.readNetFromONNX(str(path))
            except cv2.error as exc:
                raise DriverError(f"liveness model {path.name} does not load: {exc}") from exc
            self._nets.append((scale_from_name(model.path.name), net))
        self._lock = threading.Lock()

    def probabilities(self, frame: Frame, face: Detection) -> npt.NDArray[np.float64]:
        """The summed softmax over all models (three classes; class 1 = real face)."""
        height, width = frame.shape[:2]
        total = np.zeros(3, np.float64)
        for scale, net in self._nets:
            left, top, right, bottom = crop_box(face.box, scale, width, height)
            crop = frame[top : bottom + 1, left : right + 1]
            if crop.size == 0:
                raise DriverError("the face box lies outside the frame")
            patch = cv2.resize(crop, (_INPUT, _INPUT)).astype(np.float32)
            blob = np.ascontiguousarray(patch.transpose(2, 0, 1)[None])
            with self._lock:
                net.setInput(blob)
                logits = np.asarray(net.forward(), np.float64).reshape(-1)
            exp = np.exp(logits - logits.max())
            total += exp / exp.sum()
        return total

    def check(self, frame: Frame, face: Detection) -> LivenessResult:
        if not has_area_in(face.box, frame):
            # Nothing to judge is not a live face; the crop would otherwise be shifted onto
            # whatever lies at the frame's edge, or be empty.
            return LivenessResult(False, 0.0)
        total = self.probabilities(frame, face)
        score = float(total[1] / len(self._nets))
        live = int(np.argmax(total)) == 1 and score >= self.settings.threshold
        return LivenessResult(live, round(score, 4))
