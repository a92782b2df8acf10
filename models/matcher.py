"""Face-template matching math: 1:1 verification and 1:N gallery search, pure numpy.

Templates are L2-normalised vectors, so the score is the cosine similarity (a dot product) and a
higher score means "more alike". Every template carries the id of the model that produced it:
two models' vectors live in unrelated spaces, so comparing across models is refused rather than
answered with a meaningless number.

The gallery keeps one row per key (a holder id) in a preallocated matrix. Adding, replacing and
removing a row is O(1) (a removed row is filled with the last one), so a sync change never
rebuilds the matrix; a gallery built by any sequence of updates answers exactly as one built
from scratch with the same final contents.
"""

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np
import numpy.typing as npt

from models.errors import TerminalError

Vector = npt.NDArray[np.float32]
StoreDType = Literal["float32", "float16"]

# Rows are converted from float16 to float32 in blocks of this many, so a search never holds a
# second full-size copy of the gallery in memory. 1,024 rows (512 KB as float32) stay in the
# CPU's cache between the conversion and the product: over 1,000,000 rows this searched 2-3x
# faster than blocks of 16,384 (bench/faces.py).
_F16_BLOCK = 1_024
_MIN_CAPACITY = 64


class TemplateError(TerminalError):
    """Raised when a template is malformed or belongs to a different model than it is used with."""


def normalize(values: npt.ArrayLike) -> Vector:
    """``values`` as a float32 unit vector; ``TemplateError`` when empty, non-finite or zero."""
    vector = np.asarray(values, dtype=np.float32).reshape(-1)
    if vector.size == 0 or not np.all(np.isfinite(vector)):
        raise TemplateError("a template must be a non-empty vector of finite numbers")
    norm = float(np.linalg.norm(vector))
    if norm < 1e-12:
        raise TemplateError("a template must not be the zero vector")
    return np.ascontiguousarray(vector / norm, dtype=np.float32)


@dataclass(frozen=True, slots=True, eq=False)
class Template:
    """A unit vector from one model. Build it with :meth:`of` (which normalises)."""

    model: str
    vector: Vector

    @classmethod
    def of(cls, model: str, values: npt.ArrayLike) -> "Template":
        if not model:
            raise TemplateError("a template needs the id of the model that produced it")
        return cls(model, normalize(values))

    @property
    def dim(self) -> int:
        return int(self.vector.shape[0])

    def to_bytes(self) -> bytes:
        """Little-endian float32, the wire and storage format of a template (PROTOCOL.md)."""
        return self.vector.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, model: str, data: bytes) -> "Template":
        if not data or len(data) % 4:
            raise TemplateError("a stored template is a whole number of float32 values")
        return cls.of(model, np.frombuffer(data, dtype="<f4"))


def _check_same_model(a: Template, b: Template) -> None:
    if a.model != b.model:
        raise TemplateError(f"templates of models {a.model!r} and {b.model!r} are not comparable")
    if a.dim != b.dim:
        raise TemplateError(f"template sizes differ ({a.dim} and {b.dim}) within {a.model!r}")


def similarity(a: Template, b: Template) -> float:
    """Cosine similarity in [-1, 1]; symmetric. ``TemplateError`` across models."""
    _check_same_model(a, b)
    return float(np.dot(a.vector.astype(np.float64), b.vector.astype(np.float64)))


@dataclass(frozen=True, slots=True)
class Verification:
    """The outcome of a 1:1 comparison (card + face)."""

    score: float
    threshold: float

    @property
    def accepted(self) -> bool:
        return self.score >= self.threshold


def verify(probe: Template, reference: Template, threshold: float) -> Verification:
    """Is ``probe`` the same person as ``reference``? Accepted when the score ≥ ``threshold``."""
    return Verification(similarity(probe, reference), threshold)


@dataclass(frozen=True, slots=True)
class Candidate:
    key: str
    score: float


class Outcome(StrEnum):
    """Why a 1:N search named somebody or nobody."""

    MATCH = "match"
    BELOW_THRESHOLD = "below_threshold"  # the best candidate is not close enough
    AMBIGUOUS = "ambiguous"  # two holders are about as close: naming either would be a guess
    EMPTY = "empty"  # nobody enrolled for this model


@dataclass(frozen=True, slots=True)
class Identification:
    """The outcome of a 1:N search: ``key`` is set only when ``outcome`` is MATCH."""

    outcome: Outcome
    candidates: tuple[Candidate, ...]

    @property
    def key(self) -> str | None:
        return self.candidates[0].key if self.outcome is Outcome.MATCH else None

    @property
    def score(self) -> float | None:
        return self.candidates[0].score if self.candidates else None

    @property
    def margin(self) -> float | None:
        if len(self.candidates) < 2:
            return None
        return self.candidates[0].score - self.candidates[1].score


class Gallery:
    """The enrolled templates of one model, searchable 1:N.

    ``store`` float16 halves the memory of the matrix (100,000 × 128 values: 25.6 MB instead of
    51.2 MB) at the cost of converting blocks to float32 on every search and a score error of
    about 1e-3; float32 is the default.
    """

    def __init__(self, model: str, dim: int, *, store: StoreDType = "float32") -> None:
        if not model or dim <= 0:
            raise TemplateError("a gallery needs a model id and a positive template size")
        self.model = model
        self.dim = dim
        self.store: StoreDType = store
        self._dtype = np.float16 if store == "float16" else np.float32
        self._matrix: npt.NDArray[np.floating] = np.zeros((_MIN_CAPACITY, dim), self._dtype)
        self._keys: list[str] = []
        self._rows: dict[str, int] = {}

    @classmethod
    def build(
        cls,
        model: str,
        dim: int,
        items: Iterable[tuple[str, Template]],
        *,
        store: StoreDType = "float32",
    ) -> "Gallery":
        gallery = cls(model, dim, store=store)
        for key, template in items:
            gallery.add(key, template)
        return gallery

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._rows

    def keys(self) -> Iterator[str]:
        return iter(tuple(self._keys))

    @property
    def nbytes(self) -> int:
        """Bytes held by the template matrix (including spare capacity)."""
        return int(self._matrix.nbytes)

    def _check(self, template: Template) -> None:
        if template.model != self.model:
            raise TemplateError(
                f"a template of model {template.model!r} cannot join or search a gallery of "
                f"{self.model!r}"
            )
        if template.dim != self.dim:
            raise TemplateError(f"template size {template.dim} in a gallery of size {self.dim}")

    def add(self, key: str, template: Template) -> None:
        """Add ``key`` or replace its template."""
        self._check(template)
        row = self._rows.get(key)
        if row is None:
            row = len(self._keys)
            if row == self._matrix.shape[0]:
                grown = np.zeros((row * 2, self.dim), self._dtype)
                grown[:row] = self._matrix[:row]
                self._matrix = grown
            self._keys.append(key)
            self._rows[key] = row
        self._matrix[row] = template.vector

    def remove(self, key: str) -> bool:
        """Forget ``key``; ``False`` when it was not enrolled. The last row fills the gap."""
        row = self._rows.pop(key, None)
        if row is None:
            return False
        last = len(self._keys) - 1
        if row != last:
            moved = self._keys[last]
            self._matrix[row] = self._matrix[last]
            self._keys[row] = moved
            self._rows[moved] = row
        self._matrix[last] = 0
        self._keys.pop()
        return True

    def template(self, key: str) -> Template | None:
        row = self._rows.get(key)
        if row is None:
            return None
        return Template(self.model, np.asarray(self._matrix[row], dtype=np.float32).copy())

    def scores(self, probe: Template) -> npt.NDArray[np.float32]:
        """The probe's similarity to every row, in row order."""
        self._check(probe)
        count = len(self._keys)
        if self._dtype == np.float32:
            # One BLAS matrix-vector product over the live rows: memory-bound, ~51 MB read
            # for 100,000 templates of 128 values.
            return np.asarray(self._matrix[:count] @ probe.vector, dtype=np.float32)
        live = self._matrix[:count]
        out = np.empty(count, np.float32)
        for start in range(0, count, _F16_BLOCK):
            block = live[start : start + _F16_BLOCK].astype(np.float32)
            out[start : start + block.shape[0]] = block @ probe.vector
        return out

    def search(self, probe: Template, k: int = 5) -> tuple[Candidate, ...]:
        """The ``k`` closest keys, best first; equal scores are ordered by key."""
        scores = self.scores(probe)
        count = scores.shape[0]
        if count == 0 or k <= 0:
            return ()
        if k < count:
            # argpartition is O(N); only the k survivors are sorted.
            top = np.argpartition(-scores, k - 1)[:k]
            # Rows tied with the k-th score may have been cut arbitrarily: take them all, so the
            # result does not depend on row order (and incremental updates equal a rebuild).
            kth = float(scores[top].min())
            top = np.flatnonzero(scores >= kth)
        else:
            top = np.arange(count)
        ranked = sorted((-float(scores[i]), self._keys[i]) for i in top)
        return tuple(Candidate(key, -negative) for negative, key in ranked[:k])

    def identify(
        self, probe: Template, *, threshold: float, margin: float, k: int = 5
    ) -> Identification:
        """Name the closest key when its score ≥ ``threshold`` and it leads the runner-up by at
        least ``margin``; otherwise say why nobody is named."""
        candidates = self.search(probe, max(k, 2))
        return Identification(judge(candidates, threshold, margin), candidates[: max(k, 1)])


def judge(candidates: Sequence[Candidate], threshold: float, margin: float) -> Outcome:
    """The rule :meth:`Gallery.identify` applies to ranked candidates (best first)."""
    if not candidates:
        return Outcome.EMPTY
    best = candidates[0].score
    if best < threshold:
        return Outcome.BELOW_THRESHOLD
    if len(candidates) > 1 and best - candidates[1].score < margin:
        return Outcome.AMBIGUOUS
    return Outcome.MATCH


class Agreement:
    """Accept a key only when at least ``k`` of the last ``n`` frames named it.

    One frame's match can be a fluke (a blurred frame that happens to land near somebody); the
    same key named in several frames of one approach is far less likely to be wrong.
    """

    def __init__(self, k: int, n: int) -> None:
        if not 1 <= k <= n:
            raise ValueError(f"agreement needs 1 <= k <= n, got k={k}, n={n}")
        self.k = k
        self.n = n
        self._recent: deque[str | None] = deque(maxlen=n)

    def push(self, key: str | None) -> str | None:
        """Record one frame's key (``None`` for no match); the agreed key, if any, so far."""
        self._recent.append(key)
        return self.agreed()

    def agreed(self) -> str | None:
        counts: dict[str, int] = {}
        for key in self._recent:
            if key is not None:
                counts[key] = counts.get(key, 0) + 1
        winners = [key for key, count in counts.items() if count >= self.k]
        # With k > n/2 at most one key can win; with a smaller k two may, and then nobody does.
        return winners[0] if len(winners) == 1 else None

    def reset(self) -> None:
        self._recent.clear()


def agree(keys: Sequence[str | None], k: int) -> str | None:
    """The key named by at least ``k`` of ``keys`` (one per frame), if exactly one is."""
    agreement = Agreement(k, max(k, len(keys)))
    for key in keys:
        agreement.push(key)
    return agreement.agreed()
