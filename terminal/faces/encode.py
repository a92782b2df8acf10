"""Templates for every JPEG under a folder, on all cores: ``ykt faces encode``.

For HQ's bulk enrolment and for anyone scoring the encoder on their own photos. The output is
one ``.npz``: ``names`` (paths relative to the folder, sorted), ``X`` (float32 unit templates,
one row per name; a zero row where the photo gave no usable face), ``rejected`` (``[path,
reason]`` rows for those), ``model`` (the model id the templates belong to).

Without a gate the face nearest the centre is used, as in calibration (the recognizer is being
measured); with the enrolment gate a photo is judged as a registration photo is on a terminal
(one face, large and sharp enough, facing the camera).

Each worker process builds its own encoder: OpenCV and ncnn objects are not shared across
processes, and "spawn" starts workers without inheriting the parent's OpenCV threads.
"""

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from drivers.camera.images import read_image
from drivers.face.backends import build_encoder, limit_threads
from drivers.face.interface import Encoder
from drivers.face.pipeline import read_face
from drivers.face.quality import Rejection
from drivers.face.settings import EncoderSettings, QualitySettings
from models.errors import DriverError, TerminalError
from terminal.faces.calibrate import central

JPEG_SUFFIXES = (".jpg", ".jpeg")


class EncodeError(TerminalError):
    """Raised when there is nothing to encode or the workers disagree on the model."""


@dataclass(frozen=True, slots=True)
class Encoded:
    names: list[str]
    vectors: npt.NDArray[np.float32]
    rejected: list[tuple[str, str]]
    model_id: str
    seconds: float

    def save(self, path: Path) -> None:
        """Write the ``.npz``; plain string arrays, so it loads without ``allow_pickle``."""
        rejected = np.array(self.rejected, dtype=str).reshape(-1, 2)
        with path.open("wb") as handle:
            np.savez(
                handle,
                names=np.array(self.names, dtype=str),
                X=self.vectors,
                rejected=rejected,
                model=np.array(self.model_id),
            )


def list_jpegs(root: Path) -> list[str]:
    """Every JPEG under ``root`` (any depth, any case of suffix), relative, sorted."""
    found = (p for p in root.rglob("*") if p.suffix.lower() in JPEG_SUFFIXES and p.is_file())
    return sorted(p.relative_to(root).as_posix() for p in found)


# One encoder per worker process, built by the pool's initializer.
_worker: tuple[Encoder, QualitySettings | None] | None = None


def _start_worker(settings: EncoderSettings, gate: QualitySettings | None) -> None:
    global _worker  # noqa: PLW0603 (per-process state of a process pool)
    # One thread per process: the pool already uses every core.
    limit_threads(1)
    _worker = (build_encoder(settings), gate)


def encode_one(
    encoder: Encoder, gate: QualitySettings | None, path: Path
) -> tuple[npt.NDArray[np.float32] | None, str | None]:
    """The template of one photo, or the reason there is none."""
    try:
        image = read_image(path)
    except DriverError as exc:
        return None, f"unreadable: {exc}"
    try:
        if gate is not None:
            reading = read_face(encoder, image, gate, single=True)
            if reading.template is None:
                return None, str(reading.rejection or Rejection.NO_FACE)
            return reading.template.vector, None
        face = central(encoder.detect(image), image.shape[1], image.shape[0])
        if face is None:
            return None, str(Rejection.NO_FACE)
        return encoder.embed(image, face).vector, None
    except DriverError as exc:
        return None, f"not encoded: {exc}"


def _in_worker(path: str) -> tuple[str, npt.NDArray[np.float32] | None, str | None]:
    if _worker is None:
        raise EncodeError("encoder worker was not initialised")
    encoder, gate = _worker
    vector, reason = encode_one(encoder, gate, Path(path))
    return encoder.model_id, vector, reason


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def encode_folder(
    settings: EncoderSettings,
    root: Path,
    *,
    gate: QualitySettings | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    names: Sequence[str] | None = None,
) -> Encoded:
    """Encode ``names`` (default: every JPEG under ``root``) with ``workers`` processes."""
    started = time.monotonic()
    names = list(list_jpegs(root) if names is None else names)
    if not names:
        raise EncodeError(f"no JPEG photos under {root}")
    workers = min(workers or default_workers(), len(names))
    rows: list[npt.NDArray[np.float32] | None] = []
    rejected: list[tuple[str, str]] = []
    models: set[str] = set()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(settings, gate)
    ) as pool:
        paths = [str(root / name) for name in names]
        chunk = max(1, min(32, len(names) // (workers * 8)))
        for i, (model, vector, reason) in enumerate(pool.map(_in_worker, paths, chunksize=chunk)):
            models.add(model)
            rows.append(vector)
            if vector is None:
                rejected.append((names[i], reason or "rejected"))
            if progress is not None:
                progress(i + 1, len(names))
    if len(models) != 1:
        raise EncodeError(f"workers produced templates of several models: {sorted(models)}")
    (model_id,) = models
    dim = next((len(v) for v in rows if v is not None), 0)
    vectors = np.zeros((len(names), dim), np.float32)
    for i, vector in enumerate(rows):
        if vector is not None:
            vectors[i] = vector
    return Encoded(names, vectors, rejected, model_id, round(time.monotonic() - started, 1))
