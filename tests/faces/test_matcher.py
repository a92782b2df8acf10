"""The matcher: unit cases and properties (symmetry, monotonicity, model isolation, updates)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from models.matcher import (
    Agreement,
    Candidate,
    Gallery,
    Outcome,
    Template,
    TemplateError,
    agree,
    judge,
    normalize,
    similarity,
    verify,
)

DIM = 8
MODEL = "test-model"

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32)
vectors = arrays(np.float32, DIM, elements=finite).filter(
    lambda v: float(np.linalg.norm(v.astype(np.float64))) > 1e-3
)


def tpl(values: object, model: str = MODEL) -> Template:
    return Template.of(model, np.asarray(values, dtype=np.float32))


def test_normalize_gives_unit_vectors_and_rejects_garbage() -> None:
    assert np.isclose(np.linalg.norm(normalize([3.0, 4.0])), 1.0)
    for bad in ([], [0.0, 0.0], [np.nan, 1.0], [np.inf, 1.0]):
        with pytest.raises(TemplateError):
            normalize(bad)


def test_template_bytes_round_trip_is_little_endian_float32() -> None:
    t = tpl([1.0, 2.0, 2.0])
    data = t.to_bytes()
    assert len(data) == 12
    assert np.allclose(np.frombuffer(data, "<f4"), [1 / 3, 2 / 3, 2 / 3])
    back = Template.from_bytes(MODEL, data)
    assert np.array_equal(back.vector, t.vector)
    with pytest.raises(TemplateError):
        Template.from_bytes(MODEL, b"\x00\x00\x80")


def test_verify_accepts_at_and_above_threshold() -> None:
    a, b = tpl([1.0, 0.0]), tpl([1.0, 1.0])
    score = similarity(a, b)
    assert np.isclose(score, np.sqrt(0.5))
    assert verify(a, b, score).accepted
    assert not verify(a, b, score + 1e-6).accepted


def test_templates_of_different_models_are_never_compared() -> None:
    a, b = tpl([1.0, 0.0], "dlib-resnet-v1"), tpl([1.0, 0.0], "sface-2021dec")
    with pytest.raises(TemplateError, match="not comparable"):
        similarity(a, b)
    gallery = Gallery("dlib-resnet-v1", 2)
    with pytest.raises(TemplateError):
        gallery.add("h1", b)
    gallery.add("h1", a)
    with pytest.raises(TemplateError):
        gallery.search(b)


def test_identify_needs_threshold_and_margin() -> None:
    gallery = Gallery(MODEL, 2)
    gallery.add("alice", tpl([1.0, 0.0]))
    gallery.add("bob", tpl([0.0, 1.0]))
    near_alice = tpl([1.0, 0.1])
    assert gallery.identify(near_alice, threshold=0.9, margin=0.2).key == "alice"
    assert gallery.identify(near_alice, threshold=0.999, margin=0.2).outcome is (
        Outcome.BELOW_THRESHOLD
    )
    between = tpl([1.0, 0.95])
    result = gallery.identify(between, threshold=0.5, margin=0.2)
    assert result.outcome is Outcome.AMBIGUOUS
    assert result.key is None
    assert result.margin is not None and result.margin < 0.2
    assert Gallery(MODEL, 2).identify(near_alice, threshold=0.5, margin=0.1).outcome is (
        Outcome.EMPTY
    )


def test_gallery_grows_removes_and_replaces() -> None:
    gallery = Gallery(MODEL, DIM)
    rng = np.random.default_rng(1)
    for i in range(200):  # past the initial capacity, so the matrix grows
        gallery.add(f"h{i}", tpl(rng.normal(size=DIM)))
    assert len(gallery) == 200
    assert gallery.remove("h0") and not gallery.remove("h0")
    assert "h0" not in gallery and "h199" in gallery
    probe = gallery.template("h199")
    assert probe is not None
    assert gallery.search(probe, 1)[0].key == "h199"
    gallery.add("h5", probe)  # replace: same size, h5 now as close as h199
    assert len(gallery) == 199
    top = gallery.search(probe, 2)
    assert {c.key for c in top} == {"h5", "h199"}


def test_float16_storage_agrees_with_float32() -> None:
    rng = np.random.default_rng(2)
    items = [(f"h{i}", tpl(rng.normal(size=DIM))) for i in range(500)]
    g32 = Gallery.build(MODEL, DIM, items)
    g16 = Gallery.build(MODEL, DIM, items, store="float16")
    assert g16.nbytes * 2 == g32.nbytes
    probe = tpl(rng.normal(size=DIM))
    assert np.allclose(g32.scores(probe), g16.scores(probe), atol=2e-3)


def test_agreement_k_of_n() -> None:
    agreement = Agreement(2, 3)
    assert agreement.push("a") is None
    assert agreement.push(None) is None
    assert agreement.push("a") == "a"
    assert agreement.push("b") is None  # window: None, a, b
    assert agree(["a", "b", "a", "b"], 2) is None  # two keys qualify: nobody
    assert agree(["a", "a", "b"], 2) == "a"
    with pytest.raises(ValueError):
        Agreement(4, 3)


@given(vectors, vectors)
def test_similarity_is_symmetric_and_bounded(a: np.ndarray, b: np.ndarray) -> None:
    ta, tb = tpl(a), tpl(b)
    assert similarity(ta, tb) == pytest.approx(similarity(tb, ta), abs=1e-9)
    assert -1.0 - 1e-5 <= similarity(ta, tb) <= 1.0 + 1e-5
    assert similarity(ta, ta) == pytest.approx(1.0, abs=1e-5)


@given(
    st.lists(finite, min_size=1, max_size=6),
    st.floats(-1, 1),
    st.floats(-1, 1),
    st.floats(0, 0.5),
)
def test_raising_the_threshold_never_admits_more(
    scores: list[float], t1: float, t2: float, margin: float
) -> None:
    ranked = sorted((Candidate(f"k{i}", s) for i, s in enumerate(scores)), key=lambda c: -c.score)
    low, high = min(t1, t2), max(t1, t2)
    if judge(ranked, high, margin) is Outcome.MATCH:
        assert judge(ranked, low, margin) is Outcome.MATCH
    # ... and the same for 1:1 verification
    a = tpl([1.0, 0.0])
    b = tpl([np.cos(scores[0]), np.sin(scores[0])])
    if verify(a, b, high).accepted:
        assert verify(a, b, low).accepted


# The same template scored in another row of the matrix may differ in the last bits of a float32
# (BLAS sums rows in blocks), so galleries built two ways agree on scores to this tolerance only.
TOL = 1e-5


def _scores_by_key(gallery: Gallery, probe: Template) -> dict[str, float]:
    return dict(zip(gallery.keys(), (float(s) for s in gallery.scores(probe)), strict=True))


def assert_same_ranking(
    a: tuple[Candidate, ...],
    b: tuple[Candidate, ...],
    all_a: dict[str, float],
    all_b: dict[str, float],
) -> None:
    """Both are a best-first ranking of the same scores: rank by rank the scores agree, and a key
    may stand at another rank only when its score there ties the other's within ``TOL``."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert abs(x.score - y.score) <= TOL
        assert abs(all_b[x.key] - x.score) <= TOL
        assert abs(all_a[y.key] - y.score) <= TOL


def _on_a_boundary(candidates: tuple[Candidate, ...], threshold: float, margin: float) -> bool:
    """Whether a rounding difference could move the outcome across the threshold or margin."""
    if not candidates:
        return False
    best = candidates[0].score
    if abs(best - threshold) <= TOL:
        return True
    return len(candidates) > 1 and abs(best - candidates[1].score - margin) <= 2 * TOL


@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "remove"]), st.integers(0, 15), vectors),
        max_size=60,
    ),
    vectors,
    st.sampled_from(["float32", "float16"]),
)
def test_incremental_updates_equal_a_rebuild(
    ops: list[tuple[str, int, np.ndarray]], probe: np.ndarray, store: str
) -> None:
    gallery = Gallery(MODEL, DIM, store=store)  # type: ignore[arg-type]
    final: dict[str, Template] = {}
    for op, key_no, vec in ops:
        key = f"h{key_no}"
        if op == "add":
            gallery.add(key, tpl(vec))
            final[key] = tpl(vec)
        else:
            assert gallery.remove(key) == (key in final)
            final.pop(key, None)
    rebuilt = Gallery.build(MODEL, DIM, sorted(final.items()), store=store)  # type: ignore[arg-type]
    assert sorted(gallery.keys()) == sorted(rebuilt.keys())
    p = tpl(probe)
    all_a, all_b = _scores_by_key(gallery, p), _scores_by_key(rebuilt, p)
    assert all_a.keys() == all_b.keys()
    assert all(abs(all_a[k] - all_b[k]) <= TOL for k in all_a)
    assert_same_ranking(gallery.search(p, 5), rebuilt.search(p, 5), all_a, all_b)
    found_a = gallery.identify(p, threshold=0.3, margin=0.05)
    found_b = rebuilt.identify(p, threshold=0.3, margin=0.05)
    assert_same_ranking(found_a.candidates, found_b.candidates, all_a, all_b)
    if not _on_a_boundary(found_a.candidates, 0.3, 0.05):
        assert (found_a.outcome, found_a.key) == (found_b.outcome, found_b.key)


@pytest.mark.parametrize("store", ["float32", "float16"])
def test_exact_ties_are_ranked_by_key_whatever_the_insertion_order(store: str) -> None:
    same = tpl([1.0, 2.0, 0.5, 0.0, 0.0, 0.0, 0.0, 1.0])
    probe = tpl([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    for order in (["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]):
        gallery = Gallery(MODEL, DIM, store=store)  # type: ignore[arg-type]
        for key in order:
            gallery.add(key, same)
        assert [c.key for c in gallery.search(probe, 3)] == ["a", "b", "c"]
        assert [c.key for c in gallery.search(probe, 2)] == ["a", "b"]


@given(vectors, st.sampled_from(["other-model", "sface-2021dec"]))
def test_a_gallery_refuses_any_other_models_probe(vec: np.ndarray, other: str) -> None:
    gallery = Gallery.build(MODEL, DIM, [("h", tpl(vec))])
    with pytest.raises(TemplateError):
        gallery.identify(tpl(vec, other), threshold=0.0, margin=0.0)
