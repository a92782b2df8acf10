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
    assert gallery.search(p, 5) == rebuilt.search(p, 5)
    assert gallery.identify(p, threshold=0.3, margin=0.05) == rebuilt.identify(
        p, threshold=0.3, margin=0.05
    )


@given(vectors, st.sampled_from(["other-model", "sface-2021dec"]))
def test_a_gallery_refuses_any_other_models_probe(vec: np.ndarray, other: str) -> None:
    gallery = Gallery.build(MODEL, DIM, [("h", tpl(vec))])
    with pytest.raises(TemplateError):
        gallery.identify(tpl(vec, other), threshold=0.0, margin=0.0)
