"""Five-point ArcFace alignment, on synthetic faces whose landmarks are known exactly."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.face.align import ARCFACE_112, align, similarity
from drivers.face.interface import Detection, Landmarks
from models.errors import DriverError

WIDTH, HEIGHT = 640, 480


def _placed(scale: float, angle: float, cx: float, cy: float) -> np.ndarray:
    """The reference points as they appear in a frame: scaled, rotated, centred at (cx, cy)."""
    c, s = math.cos(angle), math.sin(angle)
    centred = ARCFACE_112 - ARCFACE_112.mean(axis=0)
    rotated = centred @ np.array([[c, s], [-s, c]]) * scale
    return rotated + np.array([cx, cy])


def _face(points: np.ndarray, with_mouth: bool = True) -> Detection:
    p = [tuple(float(v) for v in row) for row in points]
    marks = Landmarks(p[0], p[1], p[2], p[3] if with_mouth else None, p[4] if with_mouth else None)
    return Detection((0.0, 0.0, 1.0, 1.0), marks, 0.9)


def _blobs(points: np.ndarray, sigma: float) -> np.ndarray:
    """A BGR frame with one Gaussian dot per point (green channel)."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    frame = np.zeros((HEIGHT, WIDTH, 3), np.float64)
    for x, y in points:
        frame[..., 1] += 255 * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    return np.clip(frame, 0, 255).astype(np.uint8)


def _centroid(crop: np.ndarray, near: np.ndarray, radius: int = 8) -> np.ndarray:
    x0, y0 = (round(v) for v in near)
    window = crop[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1, 1].astype(float)
    ys, xs = np.mgrid[y0 - radius : y0 + radius + 1, x0 - radius : x0 + radius + 1]
    total = window.sum()
    assert total > 0, "no dot near the reference point: the face was not mapped onto it"
    return np.array([(xs * window).sum() / total, (ys * window).sum() / total])


frames = st.tuples(
    st.floats(0.4, 2.5),  # face size relative to the 112 template
    st.floats(-0.6, 0.6),  # roll, radians (about +-34 degrees)
    st.floats(200, 440),  # centre x
    st.floats(160, 320),  # centre y
)


@settings(max_examples=25, deadline=None)
@given(frames)
def test_landmarks_land_on_the_arcface_points_within_a_pixel(frame: tuple[float, ...]) -> None:
    scale, angle, cx, cy = frame
    points = _placed(scale, angle, cx, cy)
    # Dots about 2 px wide once in the 112 crop, wherever the face was in the frame.
    crop = align(_blobs(points, 2.0 * scale), _face(points))
    assert crop.shape == (112, 112, 3)
    for reference in ARCFACE_112:
        assert np.linalg.norm(_centroid(crop, reference) - reference) < 1.0


@settings(max_examples=40, deadline=None)
@given(frames, st.lists(st.floats(-4, 4), min_size=10, max_size=10))
def test_the_fit_is_the_least_squares_similarity(
    frame: tuple[float, ...], noise: list[float]
) -> None:
    """With noisy landmarks no nearby similarity maps them closer to the template: every point
    counts (a robust fit that keeps only the points agreeing best would fail this)."""
    points = _placed(*frame) + np.asarray(noise).reshape(5, 2)
    matrix = similarity(points, ARCFACE_112)

    def error(m: np.ndarray) -> float:
        mapped = points @ m[:, :2].T + m[:, 2]
        return float(((mapped - ARCFACE_112) ** 2).sum())

    best = error(matrix)
    a, b = matrix[0, 0], matrix[1, 0]
    for da, db, dx, dy in np.eye(4) * 1e-3:
        for sign in (1, -1):
            aa, bb = a + sign * da, b + sign * db
            tx, ty = matrix[0, 2] + sign * dx * 100, matrix[1, 2] + sign * dy * 100
            nearby = np.array([[aa, -bb, tx], [bb, aa, ty]])
            assert error(nearby) >= best - 1e-9
    # A similarity: equal scale on both axes and no shear or mirror.
    assert matrix[0, 0] == pytest.approx(matrix[1, 1])
    assert matrix[0, 1] == pytest.approx(-matrix[1, 0])


def test_outlier_moves_the_fit_but_the_other_points_still_land_close() -> None:
    points = _placed(1.0, 0.0, 320, 240)
    points[3] += (6.0, 0.0)  # a misplaced mouth corner
    matrix = similarity(points, ARCFACE_112)
    mapped = points @ matrix[:, :2].T + matrix[:, 2]
    residuals = np.linalg.norm(mapped - ARCFACE_112, axis=1)
    assert residuals[3] > 1.0  # the outlier is not fitted exactly ...
    assert residuals[[0, 1, 2, 4]].max() < 3.0  # ... and shifts the rest only a little
    assert residuals[[0, 1, 2, 4]].max() > 0.1  # but it does count (least squares, not LMEDS)


def test_eyes_and_nose_alone_align_too() -> None:
    points = _placed(1.3, 0.2, 300, 250)
    crop = align(_blobs(points, 2.6), _face(points, with_mouth=False))
    for reference in ARCFACE_112[:3]:
        assert np.linalg.norm(_centroid(crop, reference) - reference) < 1.0


def test_a_larger_crop_scales_the_template() -> None:
    points = _placed(1.0, 0.0, 320, 240)
    crop = align(_blobs(points, 2.0), _face(points), size=224)
    assert crop.shape == (224, 224, 3)
    assert np.linalg.norm(_centroid(crop, ARCFACE_112[0] * 2, 12) - ARCFACE_112[0] * 2) < 1.5


def test_collapsed_landmarks_are_refused() -> None:
    same = np.full((5, 2), 100.0)
    with pytest.raises(DriverError, match="do not fit"):
        similarity(same, ARCFACE_112)
    with pytest.raises(DriverError, match="do not fit"):
        similarity(np.full((5, 2), np.nan), ARCFACE_112)
