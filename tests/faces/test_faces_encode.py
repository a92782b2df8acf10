"""``ykt faces encode``: a folder of photos to one .npz of templates, on a few lfw-dev photos."""

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.face.interface import Encoder
from terminal.config.faces import FacesSection
from terminal.faces.calibrate import central
from terminal.faces.cli import run
from terminal.faces.encode import list_jpegs
from terminal.faces.enrol import enrol_image
from tests.faces.conftest import (
    MOBILEFACENET,
    PERSON_A,
    PERSON_B,
    TURNED_AWAY,
    YUNET,
    need_mobilefacenet,
    need_yunet,
    photo,
    photo_path,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    need_yunet()
    need_mobilefacenet()
    data = tmp_path / "photos"
    for relative in (*PERSON_A, *PERSON_B, TURNED_AWAY):
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo_path(relative), data / relative)
    # An upper-case suffix counts; a PNG and a text file do not.
    shutil.copyfile(photo_path(PERSON_B[0]), data / "Donald_Rumsfeld" / "copy.JPEG")
    (data / "notes.txt").write_text("not a photo\n")
    cv2.imwrite(str(data / "grey.png"), np.full((100, 100, 3), 128, np.uint8))
    (data / "empty").mkdir()
    cv2.imwrite(str(data / "empty" / "wall.jpg"), np.full((240, 320, 3), 128, np.uint8))
    (data / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return data


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["faces", "encode", "--data", str(data), "--out", str(out), "--yunet", str(YUNET),
            "--model", str(MOBILEFACENET), "--workers", "2", *extra]  # fmt: skip


def test_encode_writes_names_unit_templates_and_reasons(
    folder: Path, tmp_path: Path, ncnn_encoder: Encoder, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "templates.npz"
    assert run(_args(folder, out)) == 0
    with np.load(out) as data:  # no allow_pickle: plain arrays only
        names, vectors, rejected = list(data["names"]), data["X"], data["rejected"]
        model = str(data["model"])
    assert names == list_jpegs(folder) and len(names) == 9
    assert "Donald_Rumsfeld/copy.JPEG" in names and "grey.png" not in names
    assert vectors.dtype == np.float32 and vectors.shape == (9, 128)
    assert model == ncnn_encoder.model_id
    reasons = {str(name): str(reason) for name, reason in rejected}
    assert set(reasons) == {"broken.jpg", "empty/wall.jpg"}
    assert reasons["empty/wall.jpg"] == "no_face"
    assert reasons["broken.jpg"].startswith("unreadable")
    norms = np.linalg.norm(vectors, axis=1)
    for name, norm in zip(names, norms, strict=True):
        assert norm == pytest.approx(0.0 if name in reasons else 1.0, abs=1e-5), name
    # The workers compute what the terminal's encoder computes, row for row.
    for relative in (PERSON_A[0], PERSON_B[1]):
        image = photo(relative)
        face = central(ncnn_encoder.detect(image), image.shape[1], image.shape[0])
        assert face is not None
        expected = ncnn_encoder.embed(image, face).vector
        assert np.allclose(vectors[names.index(relative)], expected, atol=1e-5)
    copy, original = names.index("Donald_Rumsfeld/copy.JPEG"), names.index(PERSON_B[0])
    assert np.allclose(vectors[copy], vectors[original], atol=1e-6)
    summary = capsys.readouterr().out
    assert "9 photos, 7 templates" in summary and "rejected empty/wall.jpg: no_face" in summary


def test_with_the_gate_photos_are_judged_as_registration_photos(
    folder: Path, tmp_path: Path, ncnn_encoder: Encoder
) -> None:
    out = tmp_path / "gated.npz"
    assert run(_args(folder, out, "--gate")) == 0
    with np.load(out) as data:
        reasons = {str(name): str(reason) for name, reason in data["rejected"]}
    # Encoded without the gate (previous test), refused with it, for the reason enrolment gives.
    verdict = enrol_image(ncnn_encoder, photo(TURNED_AWAY), FacesSection().quality.for_enrolment())
    assert verdict.rejection is not None
    assert reasons[TURNED_AWAY] == str(verdict.rejection)
    assert PERSON_A[0] not in reasons and PERSON_B[0] not in reasons


def test_encode_needs_a_folder_and_a_recognizer(tmp_path: Path) -> None:
    need_yunet()
    out = tmp_path / "x.npz"
    assert run(_args(tmp_path / "missing", out)) == 2
    assert run(["faces", "encode", "--data", str(tmp_path), "--out", str(out),
                "--recognizer", "ncnn", "--yunet", str(YUNET)]) == 2  # fmt: skip
    assert not out.exists()
