"""The encoder contract, run against every backend on real labelled photos (lfw-dev)."""

import importlib
import itertools

import numpy as np
import pytest

from drivers.camera.images import place
from drivers.face.dlib_backend import import_face_recognition
from drivers.face.interface import Encoder
from drivers.face.modelfile import ModelFile
from drivers.face.settings import YuNetSettings
from drivers.face.yunet import YuNetDetector
from models.errors import DriverError
from models.matcher import similarity
from terminal.config.faces import CALIBRATED
from tests.faces.conftest import PERSON_A, PERSON_B, PERSON_C, YUNET, need_yunet, photo


def only_face(encoder: Encoder, relative: str):  # type: ignore[no-untyped-def]
    image = photo(relative)
    faces = encoder.detect(image)
    assert faces, f"no face in {relative}"
    h, w = image.shape[:2]
    face = min(faces, key=lambda f: abs(f.centre[0] - w / 2) + abs(f.centre[1] - h / 2))
    return image, face


def test_detects_the_face_with_landmarks_inside_its_box(encoder: Encoder) -> None:
    for relative in (PERSON_A[0], PERSON_B[0], PERSON_C[0]):
        _, face = only_face(encoder, relative)
        x, y, w, h = face.box
        for px, py in (face.landmarks.right_eye, face.landmarks.left_eye, face.landmarks.nose):
            assert x - 0.1 * w <= px <= x + 1.1 * w and y - 0.1 * h <= py <= y + 1.1 * h
        # "Right eye" is the subject's: on the left of the image.
        assert face.landmarks.right_eye[0] < face.landmarks.left_eye[0]
        assert 0.0 <= face.score <= 1.0
        assert 25 < face.eye_distance < 80  # 250x250 LFW photos


def test_templates_are_unit_vectors_of_the_models_size_and_repeatable(encoder: Encoder) -> None:
    image, face = only_face(encoder, PERSON_A[0])
    first = encoder.embed(image, face)
    again = encoder.embed(image, face)
    assert first.model == encoder.model_id and encoder.model_id in CALIBRATED
    assert first.dim == encoder.dim == 128
    assert np.isclose(np.linalg.norm(first.vector), 1.0, atol=1e-5)
    assert np.allclose(first.vector, again.vector, atol=1e-6)


def test_same_person_is_accepted_and_others_are_not(encoder: Encoder) -> None:
    threshold = CALIBRATED[encoder.model_id][0]
    t = {rel: encoder.embed(*only_face(encoder, rel)) for rel in (*PERSON_A, *PERSON_B, *PERSON_C)}
    genuine = [similarity(t[a], t[b]) for group in (PERSON_A, PERSON_B, PERSON_C)
               for a, b in itertools.pairwise(group)]  # fmt: skip
    impostor = [similarity(t[a], t[b]) for a in PERSON_A for b in (*PERSON_B, *PERSON_C)]
    impostor += [similarity(t[a], t[b]) for a in PERSON_B for b in PERSON_C]
    assert min(genuine) > max(impostor)
    assert sum(s >= threshold for s in genuine) >= len(genuine) - 1
    assert not any(s >= threshold for s in impostor)


def test_nobody_in_an_empty_frame(encoder: Encoder) -> None:
    assert encoder.detect(np.full((480, 640, 3), 96, np.uint8)) == []


def test_a_face_in_a_640x480_camera_frame_matches_its_photo(encoder: Encoder) -> None:
    image, face = only_face(encoder, PERSON_B[0])
    frame = place(image, 640, 480)
    faces = encoder.detect(frame)
    assert len(faces) >= 1
    framed = max(faces, key=lambda f: f.eye_distance)
    # The face moved by the letterbox offset and kept its size.
    assert abs(framed.centre[0] - (face.centre[0] + 195)) < 12
    assert abs(framed.eye_distance - face.eye_distance) < 6
    # Far above the 1:N threshold, on the model's own scale (dlib's scores crowd near 1).
    identify = CALIBRATED[encoder.model_id][1]
    score = similarity(encoder.embed(frame, framed), encoder.embed(image, face))
    assert score > (1 + identify) / 2, score


def test_yunet_scales_boxes_back_after_downscaling() -> None:
    model = need_yunet()
    full = YuNetDetector(model.model_copy(update={"max_width": 1280}))
    small = YuNetDetector(model.model_copy(update={"max_width": 320}))
    frame = place(photo(PERSON_C[0]), 640, 480)
    a = max(full.detect(frame), key=lambda f: f.eye_distance)
    b = max(small.detect(frame), key=lambda f: f.eye_distance)
    assert abs(a.centre[0] - b.centre[0]) < 6 and abs(a.centre[1] - b.centre[1]) < 6


def test_a_model_file_with_the_wrong_hash_is_refused() -> None:
    need_yunet()
    with pytest.raises(DriverError, match="sha256"):
        YuNetDetector(YuNetSettings(path=YUNET, sha256="0" * 64))
    with pytest.raises(DriverError, match="does not exist"):
        ModelFile(path=YUNET.with_name("missing.onnx"), sha256="0" * 64).verified()


def test_face_recognition_quitting_on_import_becomes_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def quits(name: str) -> None:
        raise SystemExit  # what face_recognition does when its models package fails to import

    monkeypatch.setattr(importlib, "import_module", quits)
    with pytest.raises(DriverError, match="setuptools"):
        import_face_recognition()


def test_face_recognition_imports_for_real_when_installed() -> None:
    pytest.importorskip("dlib")
    try:
        module = import_face_recognition()
    except DriverError as exc:
        pytest.fail(f"face_recognition is installed but unusable: {exc}")
    assert hasattr(module, "face_distance")
