"""The ncnn ArcFace recognizer on real photos (lfw-dev) with MobileFaceNet from ../shared."""

import hashlib
import itertools
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from drivers.camera.images import read_image
from drivers.face.align import align
from drivers.face.interface import Detection, Encoder
from drivers.face.ncnn_recognizer import NcnnRecognizer
from drivers.face.settings import (
    NcnnRecognizerSettings,
    RefineSettings,
    ncnn_model_id,
)
from drivers.face.yunet import YuNetDetector, YuNetRefiner
from models.errors import DriverError
from models.matcher import similarity
from terminal.config.faces import CALIBRATED
from terminal.faces.calibrate import central
from tests.faces.conftest import (
    PERSON_A,
    PERSON_B,
    PERSON_C,
    need_mobilefacenet,
    need_yunet,
    photo,
    photo_path,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def settings() -> NcnnRecognizerSettings:
    return need_mobilefacenet()


@pytest.fixture(scope="module")
def recognizer(settings: NcnnRecognizerSettings) -> NcnnRecognizer:
    return NcnnRecognizer(settings)


@pytest.fixture(scope="module")
def detector() -> YuNetDetector:
    return YuNetDetector(need_yunet())


def _face(detector: YuNetDetector, relative: str) -> tuple[np.ndarray, Detection]:
    image = photo(relative)
    face = central(detector.detect(image), image.shape[1], image.shape[0])
    assert face is not None, f"no face in {relative}"
    return image, face


def test_template_is_a_unit_vector_tagged_with_the_hash_derived_model_id(
    recognizer: NcnnRecognizer, settings: NcnnRecognizerSettings, detector: YuNetDetector
) -> None:
    template = recognizer.embed(*_face(detector, PERSON_A[0]))
    joined = f"{settings.param_sha256}:{settings.bin_sha256}".encode()
    assert recognizer.model_id == f"ncnn-{hashlib.sha256(joined).hexdigest()[:12]}"
    assert template.model == recognizer.model_id and recognizer.dim == template.dim == 128
    assert np.linalg.norm(template.vector) == pytest.approx(1.0, abs=1e-5)
    # The id is calibrated (thresholds without configuring them) only for these exact files.
    assert recognizer.model_id in CALIBRATED


def test_model_id_changes_with_either_file() -> None:
    a, b, c = (n * 64 for n in "abc")
    ids = {ncnn_model_id(a, b), ncnn_model_id(a, c), ncnn_model_id(c, b), ncnn_model_id(b, a)}
    assert len(ids) == 4
    # Only the contents count: the same files elsewhere, or the hash in capitals, are one model.
    assert ncnn_model_id(a, b) == ncnn_model_id("A" * 64, b)


def test_same_person_scores_above_the_threshold_and_others_below(
    recognizer: NcnnRecognizer, detector: YuNetDetector
) -> None:
    verify = CALIBRATED[recognizer.model_id][0]
    people = (PERSON_A, PERSON_B, PERSON_C)
    t = {rel: recognizer.embed(*_face(detector, rel)) for group in people for rel in group}
    genuine = [similarity(t[a], t[b]) for g in people for a, b in itertools.combinations(g, 2)]
    impostor = [
        similarity(t[a], t[b]) for g, h in itertools.combinations(people, 2) for a in g for b in h
    ]
    assert min(genuine) > max(impostor)
    assert min(genuine) >= verify > max(impostor)


def test_channel_order_is_rgb_and_bgr_would_change_the_template(
    settings: NcnnRecognizerSettings, recognizer: NcnnRecognizer, detector: YuNetDetector
) -> None:
    bgr = NcnnRecognizer(settings.model_copy(update={"rgb": False}))
    image, face = _face(detector, PERSON_B[0])
    crop = align(image, face)
    as_rgb = recognizer.embed_crop(crop).vector
    # The network sees R, G, B: swapping the crop's channels and the setting cancels out ...
    assert np.allclose(as_rgb, bgr.embed_crop(np.ascontiguousarray(crop[..., ::-1])).vector,
                       atol=1e-5)  # fmt: skip
    # ... while feeding the BGR frame as it is gives a different template.
    assert float(np.dot(as_rgb, bgr.embed_crop(crop).vector)) < 0.98
    # And RGB is the order the model was trained on: genuine pairs score higher with it.
    pairs = [(a, b) for g in (PERSON_A, PERSON_B, PERSON_C) for a, b in itertools.pairwise(g)]

    def mean_genuine(r: NcnnRecognizer) -> float:
        return float(np.mean([similarity(r.embed(*_face(detector, a)), r.embed(*_face(detector, b)))
                              for a, b in pairs]))  # fmt: skip

    assert mean_genuine(recognizer) > mean_genuine(bgr)


def test_flip_adds_the_mirrored_crop_under_its_own_model_id(
    settings: NcnnRecognizerSettings, recognizer: NcnnRecognizer, detector: YuNetDetector
) -> None:
    flipped = NcnnRecognizer(settings.model_copy(update={"flip": True}))
    assert flipped.model_id == f"{recognizer.model_id}-flip"
    crop = align(*_face(detector, PERSON_C[0]))
    plain = recognizer.embed_crop(crop).vector
    mirrored = recognizer.embed_crop(np.ascontiguousarray(crop[:, ::-1])).vector
    both = flipped.embed_crop(crop).vector
    expected = (plain + mirrored) / np.linalg.norm(plain + mirrored)
    assert np.allclose(both, expected, atol=1e-5)
    assert float(np.dot(both, plain)) < 0.999


def test_a_wrong_sha256_is_refused_with_the_reason(settings: NcnnRecognizerSettings) -> None:
    wrong = settings.model_copy(update={"bin_sha256": "0" * 64})
    with pytest.raises(DriverError, match=r"mobilefacenet\.bin has sha256 .* wrong or damaged"):
        NcnnRecognizer(wrong)
    wrong = settings.model_copy(update={"param_sha256": "0" * 64})
    with pytest.raises(DriverError, match=r"mobilefacenet\.param has sha256"):
        NcnnRecognizer(wrong)


def test_a_missing_file_is_refused(settings: NcnnRecognizerSettings, tmp_path: Path) -> None:
    missing = settings.model_copy(update={"bin": tmp_path / "gone.bin"})
    with pytest.raises(DriverError, match=r"gone\.bin does not exist"):
        NcnnRecognizer(missing)


def test_files_that_are_not_this_model_are_refused(
    settings: NcnnRecognizerSettings, tmp_path: Path
) -> None:
    def own(kind: str, path: Path, data: bytes) -> NcnnRecognizerSettings:
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        return settings.model_copy(update={kind: path, f"{kind}_sha256": digest})

    with pytest.raises(DriverError, match="does not load"):
        NcnnRecognizer(own("param", tmp_path / "junk.param", b"not a graph\n"))
    short = settings.bin.read_bytes()[:1000]
    with pytest.raises(DriverError, match="do not load"):
        NcnnRecognizer(own("bin", tmp_path / "short.bin", short))
    with pytest.raises(DriverError, match="no blob 'embedding'"):
        NcnnRecognizer(settings.model_copy(update={"output_blob": "embedding"}))


def test_concurrent_embeddings_equal_sequential_ones(
    recognizer: NcnnRecognizer, detector: YuNetDetector
) -> None:
    faces = [_face(detector, rel) for rel in (*PERSON_A, *PERSON_B)]
    expected = [recognizer.embed(*f).vector for f in faces]
    results: dict[int, list[np.ndarray]] = {}

    def work(worker: int) -> None:
        results[worker] = [recognizer.embed(*f).vector for f in faces * 3]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 4
    for vectors in results.values():
        for got, want in zip(vectors, expected * 3, strict=True):
            assert np.allclose(got, want, atol=1e-6)


def test_refinement_brings_small_face_landmarks_closer_to_a_sharper_look(
    detector: YuNetDetector,
) -> None:
    """Landmarks from YuNet on the photo enlarged 2x are the reference; the refiner, which looks
    again at an enlarged crop, must land closer to them than the first detection did."""
    model = need_yunet()
    refiner = YuNetRefiner(model, RefineSettings(below=80))
    big = YuNetDetector(model.model_copy(update={"max_width": 1000}))
    before, after = [], []
    for rel in (*PERSON_A, *PERSON_B, *PERSON_C):
        image, face = _face(detector, rel)
        large = np.asarray(np.repeat(np.repeat(image, 2, axis=0), 2, axis=1))
        sharp = central(big.detect(large), large.shape[1], large.shape[0])
        assert sharp is not None
        refined = refiner.refine(image, face)
        assert refined is not face

        def error(f: Detection, sharp: Detection = sharp) -> float:
            ours = np.array([f.landmarks.right_eye, f.landmarks.left_eye, f.landmarks.nose])
            ref = np.array([sharp.landmarks.right_eye, sharp.landmarks.left_eye,
                            sharp.landmarks.nose]) / 2  # fmt: skip
            return float(np.linalg.norm(ours - ref, axis=1).mean())

        before.append(error(face))
        after.append(error(refined))
    assert np.mean(after) < np.mean(before)


def test_refinement_leaves_large_faces_alone(detector: YuNetDetector) -> None:
    refiner = YuNetRefiner(need_yunet(), RefineSettings(below=10))
    _, face = _face(detector, PERSON_A[0])
    assert refiner.refine(photo(PERSON_A[0]), face) is face


def test_the_encoder_refines_before_embedding(ncnn_encoder: Encoder, tmp_path: Path) -> None:
    """Through the encoder (as the verifier and calibration use it), a photo copied elsewhere
    gives the same template: nothing depends on the file, only on the pixels."""
    copy = tmp_path / "copy.jpg"
    shutil.copyfile(photo_path(PERSON_A[1]), copy)
    image = read_image(copy)
    face = central(ncnn_encoder.detect(image), image.shape[1], image.shape[0])
    assert face is not None and ncnn_encoder.refiner is not None
    template = ncnn_encoder.embed(image, face)
    direct = ncnn_encoder.recognizer.embed(image, face)
    # The refined landmarks move the crop a little: close, but not the unrefined template.
    assert 0.8 < similarity(template, direct) < 0.99999
