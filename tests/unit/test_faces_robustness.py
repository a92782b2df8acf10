"""Split half, open-set identification and the impostor-tail fit, on vectors built to know the
answer."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from terminal.faces.calibrate import Pair
from terminal.faces.robustness import capacity, fit_tail, mated_scores, open_set, split_half


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _people(count: int, photos: int, noise: float, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``photos`` noisy photos of each of ``count`` random identities in 64 dimensions."""
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(count, 64)))
    # ``noise`` is the length of the noise vector (64 values of sd noise / 8).
    vectors = [_unit(c + noise / 8 * rng.normal(size=64)) for c in centres for _ in range(photos)]
    names = [f"P{i:03d}/P{i:03d}_{j:04d}.jpg" for i in range(count) for j in range(photos)]
    return np.asarray(vectors), names


def test_open_set_counts_strangers_and_enrolled_probes_as_designed() -> None:
    e = np.eye(4, dtype=np.float32)
    # Enrolled: Alice (first photo), Bob, Carol (0.8 like Alice). Alice's second photo is 0.9
    # like her first and 0.72 like Carol; Bob is like nobody.
    alice2 = _unit(np.array([0.9, math.sqrt(1 - 0.81), 0, 0]))
    carol = _unit(np.array([0.8, 0, 0, 0.6]))
    vectors = np.stack([e[0], alice2, e[2], carol])
    names = ["Alice/Alice_0001.jpg", "Alice/Alice_0002.jpg", "Bob/Bob_0001.jpg",
             "Carol/Carol_0001.jpg"]  # fmt: skip
    valid = np.ones(4, bool)
    loose, strict, strictest = open_set(vectors, valid, names, [0.7, 0.75, 0.85], margin=0.05)
    assert loose.gallery == 2 and loose.strangers == 4 and loose.enrolled_probes == 1
    # Each probe against the others' gallery: both Alices are taken for Carol (0.8, 0.72) and
    # Carol for Alice (0.8); Bob for nobody.
    assert loose.false_positives == 3 and loose.fpir == pytest.approx(0.75)
    assert strict.false_positives == 2  # 0.72 no longer passes
    assert strictest.false_positives == 0
    # Alice's second photo finds her (0.9, 0.18 ahead of Carol) at every threshold here.
    assert loose.found == strictest.found == 1 and loose.tpir == 1.0
    assert loose.wrong_identity == 0
    (no_lead,) = open_set(vectors, valid, names, [0.7], margin=0.85)
    assert no_lead.false_positives == 0 and no_lead.found == 0  # nobody leads by 0.85


def test_mated_scores_skip_enrolled_photos_and_fail_faceless_ones() -> None:
    vectors, names = _people(3, 3, 0.1)
    valid = np.ones(len(names), bool)
    valid[4] = False
    scores = mated_scores(vectors, valid, names)
    assert scores.size == 6 and np.isneginf(scores).sum() == 1
    assert np.all(scores[np.isfinite(scores)] > 0.8)


@settings(max_examples=10, deadline=None)
@given(st.floats(20.0, 60.0), st.floats(-0.2, 0.2))
def test_tail_fit_recovers_an_exponential_tail(rate: float, start: float) -> None:
    """Scores start + Exp(rate): log10 FAR = −rate / ln 10 · (t − start) exactly."""
    rng = np.random.default_rng(1)
    scores = np.sort(start + rng.exponential(1 / rate, size=400_000))[::-1]
    tail = fit_tail(scores)
    assert tail.slope == pytest.approx(-rate / math.log(10), rel=0.05)
    assert tail.far(start + math.log(1e5) / rate) == pytest.approx(1e-5, rel=0.3)
    # One decade beyond the fitted range: as good as the slope.
    expected = start + math.log(1e6) / rate
    assert tail.threshold(1e-6) - start == pytest.approx(expected - start, rel=0.05)


def test_capacity_says_which_thresholds_are_measured() -> None:
    rng = np.random.default_rng(2)
    impostors = np.sort(rng.exponential(0.05, size=200_000))[::-1]
    mated = np.linspace(0.0, 1.0, 101)
    rows = capacity(impostors, mated, (100, 10_000, 1_000_000), fpir=0.01)
    assert [r.measured for r in rows] == [True, False, False]
    assert rows[0].far_needed == pytest.approx(1e-4, rel=0.01)
    thresholds = [r.threshold for r in rows]
    assert thresholds == sorted(thresholds)  # larger galleries need stricter thresholds
    assert [r.tpir for r in rows] == sorted((r.tpir for r in rows), reverse=True)
    # Exponential scores with mean 0.05: FAR 1e-4 at about 0.05 · ln 1e4.
    assert rows[0].threshold == pytest.approx(0.05 * math.log(1e4), rel=0.1)


def test_split_half_applies_each_halfs_threshold_to_the_other() -> None:
    vectors, names = _people(40, 3, 0.25, seed=3)
    valid = np.ones(len(names), bool)
    pairs = [Pair(True, names[i], names[i + 1]) for i in range(0, len(names), 3)]
    points = split_half(vectors, valid, names, pairs, (1e-2, 1e-3))
    assert [(p.fitted_on, p.far_target) for p in points] == [
        ("A", 1e-2), ("A", 1e-3), ("B", 1e-2), ("B", 1e-3)]  # fmt: skip
    by = {(p.fitted_on, p.far_target): p for p in points}
    for far in (1e-2, 1e-3):
        a, b = by["A", far], by["B", far]
        assert a.threshold == b.own_threshold and b.threshold == a.own_threshold
        assert a.tar_other == pytest.approx(b.tar_fitted, abs=0.2)
        assert 0.0 <= a.far_other <= 1.0
    # Well separated people: every genuine pair passes the FAR 1e-2 threshold of either half.
    assert by["A", 1e-2].tar_other == 1.0 and by["B", 1e-2].tar_other == 1.0
