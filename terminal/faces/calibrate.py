"""Calibration on real labelled faces: TAR at fixed FAR per backend, and the thresholds it implies.

Data: a folder of ``<Identity>/<Identity>_NNNN.jpg`` photos with ``pairs.tsv`` (``same``,
``path_a``, ``path_b``), as in the LFW DEV subset the project develops with (docs/faces.md).

- **Genuine scores** are the genuine pairs of ``pairs.tsv`` (at most 20 per identity, so a few
  heavily photographed people do not dominate). A pair where either photo gave no face counts
  as a rejection: that is what a person at the gate would experience.
- **Impostor scores** are every pair of encoded photos of two different identities (about four
  million for the DEV subset). ``pairs.tsv``'s 1,230 impostor pairs cannot resolve a FAR below
  about 1e-3; all cross-identity pairs resolve 1e-5 with tens of false accepts. They are not
  independent (each photo appears in thousands of pairs), so the lowest FAR points are less
  certain than their count suggests; the report says how many false accepts each point allows.

Photos are encoded without the quality gate (the recognizer is measured, not the gate) and the
face nearest the centre is used, as the data set labels that person.
"""

import csv
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from drivers.camera.images import read_image
from drivers.face.interface import Detection, FaceEncoder
from drivers.face.settings import RefineSettings
from models.errors import DriverError, TerminalError

logger = logging.getLogger(__name__)

FARS = (1e-3, 1e-4, 1e-5)


class CalibrationError(TerminalError):
    """Raised when the calibration data is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Pair:
    same: bool
    a: str
    b: str


@dataclass(frozen=True, slots=True)
class RocPoint:
    """At ``threshold``: the share of genuine pairs accepted (``tar``) and of impostor pairs
    accepted (``far``, measured; at most ``far_target``)."""

    far_target: float
    threshold: float
    far: float
    tar: float
    false_accepts: int
    pairs_tsv_false_accepts: int


@dataclass(frozen=True, slots=True)
class Calibration:
    backend: str
    model_id: str
    images: int
    failed: int
    genuine_pairs: int
    impostor_pairs: int
    pairs_tsv_impostors: int
    points: tuple[RocPoint, ...]
    encode_ms_median: float
    eer: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_pairs(path: Path) -> list[Pair]:
    if not path.is_file():
        raise CalibrationError(f"no pairs file at {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    try:
        return [Pair(row["same"] == "1", row["path_a"], row["path_b"]) for row in rows]
    except KeyError as exc:
        raise CalibrationError(f"{path.name} needs columns same, path_a, path_b") from exc


def identity(relative: str) -> str:
    return relative.split("/", 1)[0]


def list_images(root: Path) -> list[str]:
    """Relative paths of every photo under ``root``, sorted."""
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*.jpg"))


def central(faces: Sequence[Detection], width: int, height: int) -> Detection | None:
    if not faces:
        return None
    return min(faces, key=lambda f: math.hypot(f.centre[0] - width / 2, f.centre[1] - height / 2))


def cache_tag(data_name: str, refine: RefineSettings | None) -> str:
    """Refinement changes templates without changing the model id: it is part of the key."""
    return data_name if refine is None else f"{data_name}-refine{refine.below:g}-{refine.size}"


def cache_path(cache_dir: Path, encoder: FaceEncoder, names: Sequence[str], tag: str) -> Path:
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    # The recipe: settings that change templates without changing the model id (refinement,
    # detector thresholds, preprocessing) must not find the encodings made without them.
    recipe = getattr(encoder, "recipe", "") or "plain"
    return cache_dir / f"{encoder.name}-{encoder.model_id}-{recipe}-{tag}-{digest}.npz"


def encode_images(
    encoder: FaceEncoder,
    root: Path,
    names: Sequence[str],
    *,
    cache_dir: Path | None = None,
    cache_tag: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], list[float]]:
    """Templates of ``names`` (rows; zeros where no face), which rows are valid, and ms each."""
    cache = cache_path(cache_dir, encoder, names, cache_tag) if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            return data["vectors"], data["valid"], [float(x) for x in data["ms"]]
    vectors = np.zeros((len(names), encoder.dim), np.float32)
    valid = np.zeros(len(names), bool)
    timings: list[float] = []
    for i, name in enumerate(names):
        image = read_image(root / name)
        started = time.perf_counter()
        face = central(encoder.detect(image), image.shape[1], image.shape[0])
        if face is not None:
            try:
                vectors[i] = encoder.embed(image, face).vector
                valid[i] = True
            except DriverError as exc:
                logger.warning("photo %d not encoded: %s", i, exc)
        timings.append((time.perf_counter() - started) * 1000)
        if progress is not None:
            progress(i + 1, len(names))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, vectors=vectors, valid=valid, ms=np.asarray(timings))
    return vectors, valid, timings


def threshold_at(impostor_desc: npt.NDArray[np.float64], far: float) -> float:
    """The lowest threshold accepting at most ``far`` of the impostor scores (sorted high→low)."""
    allowed = math.floor(far * impostor_desc.size)
    if allowed >= impostor_desc.size:
        return float("-inf")
    return float(np.nextafter(impostor_desc[allowed], np.inf))


def impostor_scores(
    vectors: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_], labels: Sequence[str]
) -> npt.NDArray[np.float64]:
    """Scores of every pair of valid rows with different labels, sorted high to low."""
    keep = np.flatnonzero(valid)
    v = vectors[keep].astype(np.float64)
    ids = np.unique(np.asarray(labels, dtype=object)[keep], return_inverse=True)[1]
    chunks: list[npt.NDArray[np.float64]] = []
    for start in range(0, len(keep), 512):
        block = v[start : start + 512] @ v.T
        rows = np.arange(start, min(start + 512, len(keep)))
        upper = np.arange(len(keep))[None, :] > rows[:, None]
        different = ids[rows][:, None] != ids[None, :]
        chunks.append(block[upper & different])
    scores = np.concatenate(chunks) if chunks else np.zeros(0)
    return np.sort(scores)[::-1]


def calibrate(
    encoder: FaceEncoder,
    root: Path,
    *,
    cache_dir: Path | None = None,
    cache_tag: str = "",
    progress: Callable[[int, int], None] | None = None,
    fars: Sequence[float] = FARS,
    encoded: tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], list[float]] | None = None,
) -> Calibration:
    """``encoded``: the result of :func:`encode_images` for :func:`list_images`, if at hand."""
    started = time.monotonic()
    pairs = read_pairs(root / "pairs.tsv")
    names = list_images(root)
    if not names:
        raise CalibrationError(f"no photos under {root}")
    index = {name: i for i, name in enumerate(names)}
    vectors, valid, timings = encoded or encode_images(
        encoder, root, names, cache_dir=cache_dir, cache_tag=cache_tag, progress=progress
    )
    impostors = impostor_scores(vectors, valid, [identity(n) for n in names])

    def score(pair: Pair) -> float:
        a, b = index[pair.a], index[pair.b]
        if not (valid[a] and valid[b]):
            return float("-inf")  # no face: the person is not let through
        return float(np.dot(vectors[a].astype(np.float64), vectors[b].astype(np.float64)))

    genuine = np.array([score(p) for p in pairs if p.same])
    tsv_impostors = np.array([score(p) for p in pairs if not p.same])
    points = []
    for far in fars:
        threshold = threshold_at(impostors, far)
        accepted = int(np.count_nonzero(impostors >= threshold))
        points.append(
            RocPoint(
                far_target=far,
                threshold=round(threshold, 4),
                far=accepted / max(1, impostors.size),
                tar=float(np.mean(genuine >= threshold)) if genuine.size else 0.0,
                false_accepts=accepted,
                pairs_tsv_false_accepts=int(np.count_nonzero(tsv_impostors >= threshold)),
            )
        )
    return Calibration(
        backend=encoder.name,
        model_id=encoder.model_id,
        images=len(names),
        failed=int(np.count_nonzero(~valid)),
        genuine_pairs=int(genuine.size),
        impostor_pairs=int(impostors.size),
        pairs_tsv_impostors=int(tsv_impostors.size),
        points=tuple(points),
        encode_ms_median=float(np.median(timings)) if timings else 0.0,
        eer=_eer(genuine, impostors),
        seconds=round(time.monotonic() - started, 1),
    )


def _eer(genuine: npt.NDArray[np.float64], impostor_desc: npt.NDArray[np.float64]) -> float:
    """Equal error rate on a grid of thresholds (a summary number, not used for defaults)."""
    if genuine.size == 0 or impostor_desc.size == 0:
        return float("nan")
    finite = genuine[np.isfinite(genuine)]
    grid = np.linspace(-1.0, 1.0, 2001)
    impostor_asc = impostor_desc[::-1]
    far = 1.0 - np.searchsorted(impostor_asc, grid, side="left") / impostor_asc.size
    frr = 1.0 - np.array([np.count_nonzero(finite >= t) for t in grid]) / genuine.size
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2)


def default_cache_dir() -> Path:
    """Where encoded calibration photos are cached: never inside the project tree."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ykt-terminal" / "calibration"


def identification_threshold(
    points: Sequence[RocPoint], gallery_size: int, target_fpir: float
) -> RocPoint | None:
    """The 1:N operating point: FPIR ≈ N·FAR, so the per-comparison FAR must be ≤ FPIR / N.

    Returns the calibrated point with the highest FAR that still meets it, or ``None`` when even
    the strictest calibrated point is not strict enough for a gallery this large.
    """
    needed = target_fpir / max(1, gallery_size)
    usable = [p for p in points if p.far_target <= needed * (1 + 1e-9)]
    return max(usable, key=lambda p: p.far_target) if usable else None
