"""Fixtures: the shared test data (../shared beside the project) and encoders built on it.

The photos and model files are never copied into the project; tests that need them are skipped,
saying what is missing, when ../shared is not there.
"""

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.camera.images import read_image
from drivers.camera.interface import Frame
from drivers.face.backends import build_encoder
from drivers.face.interface import Encoder
from drivers.face.settings import (
    MOBILEFACENET_BIN_SHA256,
    MOBILEFACENET_PARAM_SHA256,
    DlibHogSettings,
    EncoderSettings,
    NcnnRecognizerSettings,
    RefineSettings,
    YuNetSettings,
)
from drivers.face.yunet import YUNET_2023MAR_SHA256
from terminal.store import Store
from terminal.store.faces import FaceStore

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
LFW = SHARED / "faces" / "lfw-dev"
YUNET = SHARED / "models" / "yunet" / "face_detection_yunet_2023mar.onnx"
MINIFASNET = SHARED / "models" / "minifasnet"
MOBILEFACENET = SHARED / "models" / "mobilefacenet"

# Photos used across the tests: identities with several photos, one face each at YuNet 0.9.
# Each tuple: the enrolment photo first, then other photos of the same person that the encoders
# match to it at the calibrated 1:1 threshold (checked when these were chosen).
PERSON_A = ("Tony_Blair/Tony_Blair_0003.jpg", "Tony_Blair/Tony_Blair_0006.jpg",
            "Tony_Blair/Tony_Blair_0002.jpg")  # fmt: skip
PERSON_B = ("Donald_Rumsfeld/Donald_Rumsfeld_0002.jpg", "Donald_Rumsfeld/Donald_Rumsfeld_0003.jpg")
PERSON_C = ("Gerhard_Schroeder/Gerhard_Schroeder_0004.jpg",
            "Gerhard_Schroeder/Gerhard_Schroeder_0001.jpg")  # fmt: skip
TURNED_AWAY = "Tony_Blair/Tony_Blair_0001.jpg"  # head turned: the quality gate rejects it (pose)


def need_lfw() -> Path:
    if not (LFW / "pairs.tsv").is_file():
        pytest.skip(f"real face photos not found at {LFW} (shared test data, see README)")
    return LFW


def need_yunet() -> YuNetSettings:
    if not YUNET.is_file():
        pytest.skip(f"YuNet model not found at {YUNET} (shared test data)")
    return YuNetSettings(path=YUNET, sha256=YUNET_2023MAR_SHA256)


def need_mobilefacenet() -> NcnnRecognizerSettings:
    """MobileFaceNet-ArcFace in ncnn format (development data, never shipped)."""
    param, weights = MOBILEFACENET / "mobilefacenet.param", MOBILEFACENET / "mobilefacenet.bin"
    if not (param.is_file() and weights.is_file()):
        pytest.skip(f"MobileFaceNet (ncnn) not found at {MOBILEFACENET} (shared test data)")
    if importlib.util.find_spec("ncnn") is None:
        pytest.skip("ncnn is not installed (pip install ncnn)")
    return NcnnRecognizerSettings(
        param=param,
        param_sha256=MOBILEFACENET_PARAM_SHA256,
        bin=weights,
        bin_sha256=MOBILEFACENET_BIN_SHA256,
    )


def need_dlib() -> None:
    for module in ("dlib", "face_recognition_models"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install dlib-bin face-recognition-models)")


def photo_path(relative: str) -> Path:
    return need_lfw() / relative


def photo(relative: str) -> Frame:
    return read_image(need_lfw() / relative)


@pytest.fixture(scope="session")
def onnx_encoder() -> Encoder:
    need_dlib()
    return build_encoder(EncoderSettings(backend="onnx", recognizer="dlib", yunet=need_yunet()))


@pytest.fixture(scope="session")
def ncnn_encoder() -> Encoder:
    return build_encoder(
        EncoderSettings(
            backend="onnx",
            recognizer="ncnn",
            yunet=need_yunet(),
            ncnn=need_mobilefacenet(),
            refine=RefineSettings(),
        )
    )


@pytest.fixture(scope="session")
def dlib_encoder() -> Encoder:
    need_dlib()
    return build_encoder(
        EncoderSettings(backend="dlib", dlib_hog=DlibHogSettings(max_width=640, upsample=1))
    )


@pytest.fixture(params=["onnx", "dlib", "ncnn"])
def encoder(request: pytest.FixtureRequest) -> Encoder:
    """Every backend, for the encoder contract."""
    fixture: Encoder = request.getfixturevalue(f"{request.param}_encoder")
    return fixture


@pytest.fixture
def faces(store: Store) -> Iterator[FaceStore]:
    yield FaceStore(store)
