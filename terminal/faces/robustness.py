"""How far calibrated thresholds can be trusted: split-half shift, open-set identification and
the gallery size the impostor tail supports.

All three work on the encoded calibration photos (``calibrate.encode_images``), so they cost a
few seconds once ``ykt faces calibrate`` has cached the encodings.

- **Split half**: thresholds chosen on half of the identities, applied to the other half (and
  the other way round): the FAR and TAR the other half then sees is the shift a site should
  expect between calibration data and its own people.
- **Open set**: a gallery of one photo per identity (about 1,180 on lfw-dev). Every photo is a
  probe twice: against the gallery without its own identity (a stranger: a false positive when
  the best match passes threshold and margin, FPIR) and, unless it is the enrolled photo,
  against the full gallery (an enrolled person: found when the best match is the right identity
  and passes threshold and margin, TPIR). Measured, one photo per decision (the terminal's k of
  n frame agreement is not modelled).
- **Extrapolation**: for larger galleries FPIR ≈ 1 − (1 − FAR)^N, with FAR beyond the measured
  range taken from an exponential fit of the impostor tail (log FAR linear in the threshold,
  fitted between FAR 1e-2 and 1e-4). Impostor scores of unit vectors fall off faster than
  exponentially, so the fit overstates FAR far out: an extrapolated threshold errs strict.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from terminal.faces.calibrate import Pair, identity, impostor_scores, threshold_at


@dataclass(frozen=True, slots=True)
class SplitPoint:
    """Thresholds from half ``fitted_on`` at ``far_target``, measured on the other half."""

    fitted_on: str
    far_target: float
    threshold: float
    own_threshold: float
    tar_fitted: float
    tar_other: float
    far_other: float
    false_accepts_other: int


@dataclass(frozen=True, slots=True)
class OpenSetPoint:
    threshold: float
    margin: float
    gallery: int
    fpir: float
    false_positives: int
    strangers: int
    tpir: float
    found: int
    enrolled_probes: int
    wrong_identity: int


@dataclass(frozen=True, slots=True)
class TailFit:
    """``log10 FAR = intercept + slope · threshold`` over the fitted range."""

    intercept: float
    slope: float
    low: float
    high: float

    def far(self, threshold: float) -> float:
        return float(min(1.0, 10 ** (self.intercept + self.slope * threshold)))

    def threshold(self, far: float) -> float:
        return (math.log10(far) - self.intercept) / self.slope


@dataclass(frozen=True, slots=True)
class Capacity:
    gallery: int
    fpir_target: float
    far_needed: float
    threshold: float
    measured: bool
    tpir: float


def _genuine(
    vectors: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    index: dict[str, int],
    pairs: Sequence[Pair],
) -> npt.NDArray[np.float64]:
    def score(p: Pair) -> float:
        a, b = index[p.a], index[p.b]
        if not (valid[a] and valid[b]):
            return float("-inf")
        return float(np.dot(vectors[a].astype(np.float64), vectors[b].astype(np.float64)))

    return np.array([score(p) for p in pairs if p.same])


def split_half(
    vectors: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    names: Sequence[str],
    pairs: Sequence[Pair],
    fars: Sequence[float],
    *,
    seed: int = 0,
) -> list[SplitPoint]:
    """Thresholds fitted on one random half of the identities, applied to the other."""
    labels = [identity(n) for n in names]
    people = sorted(set(labels))
    order = np.random.default_rng(seed).permutation(len(people))
    first = {people[i] for i in order[: len(people) // 2]}
    index = {name: i for i, name in enumerate(names)}
    halves = {}
    for tag, inside in (("A", True), ("B", False)):
        rows = np.array([(label in first) == inside for label in labels])
        imp = impostor_scores(vectors, valid & rows, labels)
        mine = [p for p in pairs if (identity(p.a) in first) == inside]
        halves[tag] = (imp, _genuine(vectors, valid, index, mine))
    points = []
    for fitted, other in (("A", "B"), ("B", "A")):
        imp_f, gen_f = halves[fitted]
        imp_o, gen_o = halves[other]
        for far in fars:
            t = threshold_at(imp_f, far)
            accepted = int(np.count_nonzero(imp_o >= t))
            points.append(
                SplitPoint(
                    fitted_on=fitted,
                    far_target=far,
                    threshold=round(t, 4),
                    own_threshold=round(threshold_at(imp_o, far), 4),
                    tar_fitted=float(np.mean(gen_f >= t)),
                    tar_other=float(np.mean(gen_o >= t)),
                    far_other=accepted / max(1, imp_o.size),
                    false_accepts_other=accepted,
                )
            )
    return points


def open_set(
    vectors: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    names: Sequence[str],
    thresholds: Sequence[float],
    margin: float,
) -> list[OpenSetPoint]:
    """FPIR and TPIR with one enrolled photo (the first valid one) per identity."""
    labels = [identity(n) for n in names]
    enrolled: dict[str, int] = {}
    for i, label in enumerate(labels):
        if valid[i] and label not in enrolled:
            enrolled[label] = i
    people = sorted(enrolled)
    column = {label: j for j, label in enumerate(people)}
    gallery = vectors[[enrolled[p] for p in people]].astype(np.float64)
    probes = np.flatnonzero(valid)
    scores = vectors[probes].astype(np.float64) @ gallery.T
    own = np.array([column[labels[i]] for i in probes])
    rows = np.arange(len(probes))
    # Strangers: the gallery without the probe's own identity.
    stranger = scores.copy()
    stranger[rows, own] = -np.inf
    top2 = -np.sort(-stranger, axis=1)[:, :2]
    # Enrolled: every photo but the enrolled one, against the whole gallery.
    mated = np.array([enrolled[labels[i]] != i for i in probes])
    ranked = -np.sort(-scores[mated], axis=1)[:, :2]
    best = np.argmax(scores[mated], axis=1)
    right = best == own[mated]
    points = []
    for t in thresholds:
        passes = (top2[:, 0] >= t) & (top2[:, 0] - top2[:, 1] >= margin)
        accepted = (ranked[:, 0] >= t) & (ranked[:, 0] - ranked[:, 1] >= margin)
        found = int(np.count_nonzero(accepted & right))
        points.append(
            OpenSetPoint(
                threshold=round(float(t), 4),
                margin=margin,
                gallery=len(people) - 1,
                fpir=float(np.mean(passes)),
                false_positives=int(np.count_nonzero(passes)),
                strangers=len(probes),
                tpir=found / max(1, int(np.count_nonzero(mated))),
                found=found,
                enrolled_probes=int(np.count_nonzero(mated)),
                wrong_identity=int(np.count_nonzero(accepted & ~right)),
            )
        )
    return points


def fit_tail(
    impostor_desc: npt.NDArray[np.float64], low: float = 1e-4, high: float = 1e-2
) -> TailFit:
    """Least-squares line through (threshold, log10 FAR) at 25 FARs from ``high`` to ``low``."""
    fars = np.logspace(math.log10(high), math.log10(low), 25)
    ts = np.array([threshold_at(impostor_desc, f) for f in fars])
    slope, intercept = np.polyfit(ts, np.log10(fars), 1)
    return TailFit(float(intercept), float(slope), low, high)


def capacity(
    impostor_desc: npt.NDArray[np.float64],
    mated_scores: npt.NDArray[np.float64],
    sizes: Sequence[int],
    fpir: float,
) -> list[Capacity]:
    """Per gallery size: the FAR per comparison FPIR needs, its threshold (measured while the
    data resolves it with at least 10 false accepts, else from the tail fit), and the share of
    enrolled probes scoring at least that against their own template."""
    tail = fit_tail(impostor_desc)
    out = []
    for n in sizes:
        far = 1.0 - (1.0 - fpir) ** (1.0 / n)
        measured = far * impostor_desc.size >= 10
        t = threshold_at(impostor_desc, far) if measured else tail.threshold(far)
        out.append(Capacity(n, fpir, far, round(t, 4), measured, float(np.mean(mated_scores >= t))))
    return out


def mated_scores(
    vectors: npt.NDArray[np.float32], valid: npt.NDArray[np.bool_], names: Sequence[str]
) -> npt.NDArray[np.float64]:
    """Each non-enrolled photo's score against its identity's enrolled (first valid) photo;
    ``-inf`` for photos without a face (they are not found)."""
    labels = [identity(n) for n in names]
    enrolled: dict[str, int] = {}
    for i, label in enumerate(labels):
        if valid[i] and label not in enrolled:
            enrolled[label] = i
    out = []
    for i, label in enumerate(labels):
        j = enrolled.get(label)
        if j is None or j == i:
            continue
        out.append(float(vectors[i] @ vectors[j]) if valid[i] else float("-inf"))
    return np.array(out)


@dataclass(frozen=True, slots=True)
class Robustness:
    split: list[SplitPoint]
    open_set: list[OpenSetPoint]
    tail: TailFit
    capacity: list[Capacity]


def assess(
    vectors: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    names: Sequence[str],
    pairs: Sequence[Pair],
    *,
    fars: Sequence[float],
    thresholds: Sequence[float],
    margin: float,
    sizes: Sequence[int] = (1_000, 2_000, 10_000, 50_000),
    fpir: float = 0.01,
) -> Robustness:
    impostors = impostor_scores(vectors, valid, [identity(n) for n in names])
    return Robustness(
        split=split_half(vectors, valid, names, pairs, fars),
        open_set=open_set(vectors, valid, names, thresholds, margin),
        tail=fit_tail(impostors),
        capacity=capacity(impostors, mated_scores(vectors, valid, names), sizes, fpir),
    )


def format_robustness(result: Robustness) -> str:
    lines = ["  split half (thresholds from one half of the identities, measured on the other):",
             "    fitted on  FAR target  threshold  other half's own  TAR fitted  TAR other  "
             "FAR other (false accepts)"]  # fmt: skip
    for p in result.split:
        lines.append(
            f"    {p.fitted_on:<10} {p.far_target:<11.0e} {p.threshold:<10.4f} "
            f"{p.own_threshold:<17.4f} {p.tar_fitted:<11.2%} {p.tar_other:<10.2%} "
            f"{p.far_other:.2e} ({p.false_accepts_other})"
        )
    lines.append("  open set, measured (one enrolled photo per identity, each photo a probe):")
    for o in result.open_set:
        lines.append(
            f"    threshold {o.threshold:.4f} margin {o.margin:g}, gallery {o.gallery:,}: "
            f"FPIR {o.fpir:.2%} ({o.false_positives}/{o.strangers}), TPIR {o.tpir:.2%} "
            f"({o.found}/{o.enrolled_probes}), wrong identity named {o.wrong_identity}"
        )
    t = result.tail
    lines.append(
        f"  impostor tail fit: log10 FAR = {t.intercept:.3f} {t.slope:+.3f}·threshold "
        f"(fitted at FAR {t.high:g}..{t.low:g})"
    )
    for c in result.capacity:
        kind = "measured" if c.measured else "EXTRAPOLATED"
        lines.append(
            f"    N={c.gallery:>7,} at FPIR {c.fpir_target:g}: FAR {c.far_needed:.1e} per "
            f"comparison, threshold {c.threshold:.4f} ({kind}), TPIR {c.tpir:.2%}"
        )
    return "\n".join(lines)
