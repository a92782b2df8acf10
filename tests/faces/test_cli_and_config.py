"""``ykt faces calibrate`` on a small labelled set, the ROC arithmetic, and the [faces] schema."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from terminal.config.faces import FacesSection, ModelFileConfig, OnnxRecognizerConfig
from terminal.faces.calibrate import (
    RocPoint,
    identification_threshold,
    impostor_scores,
    threshold_at,
)
from terminal.faces.cli import run
from tests.faces.conftest import PERSON_A, PERSON_B, PERSON_C, YUNET, need_lfw, need_yunet


def test_threshold_at_far_allows_at_most_that_share_of_impostors() -> None:
    impostors = np.sort(np.linspace(0, 1, 1000))[::-1]
    t = threshold_at(impostors, 0.01)
    assert np.count_nonzero(impostors >= t) <= 10
    assert np.count_nonzero(impostors >= np.nextafter(impostors[10], -1)) == 11


def test_impostor_scores_skip_same_identity_and_failed_photos() -> None:
    v = np.eye(3, dtype=np.float32)
    scores = impostor_scores(v, np.array([True, True, False]), ["a", "a", "b"])
    assert scores.size == 0  # the only different-identity photo failed
    scores = impostor_scores(v, np.array([True, True, True]), ["a", "a", "b"])
    assert scores.size == 2


def test_one_to_n_uses_the_far_the_gallery_needs() -> None:
    points = [RocPoint(f, 0.9 + i / 100, f, 0.9 - i / 10, 0, 0) for i, f in
              enumerate((1e-3, 1e-4, 1e-5))]  # fmt: skip
    assert identification_threshold(points, 10, 0.01) == points[0]  # needs FAR <= 1e-3
    assert identification_threshold(points, 1000, 0.01) == points[2]  # needs FAR <= 1e-5
    assert identification_threshold(points, 100_000, 0.01) is None  # beyond calibration


def test_calibrate_command_on_a_small_labelled_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_yunet()
    pytest.importorskip("dlib")
    lfw = need_lfw()
    data = tmp_path / "mini"
    for relative in (*PERSON_A, *PERSON_B, *PERSON_C):
        (data / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(lfw / relative, data / relative)
    rows = ["same\tpath_a\tpath_b", f"1\t{PERSON_A[0]}\t{PERSON_A[1]}",
            f"1\t{PERSON_B[0]}\t{PERSON_B[1]}", f"0\t{PERSON_A[0]}\t{PERSON_C[0]}"]  # fmt: skip
    (data / "pairs.tsv").write_text("\n".join(rows) + "\n")
    out_json = tmp_path / "cal.json"
    code = run(["faces", "calibrate", "--data", str(data), "--backend", "onnx", "--yunet",
                str(YUNET), "--no-cache", "--json", str(out_json)])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "backend onnx, model dlib-resnet-v1: 7 photos (0 without a face)" in text
    assert "FAR target" in text and out_json.is_file()


def test_faces_config_is_strict_and_safe_by_default(tmp_path: Path) -> None:
    section = FacesSection()
    assert not section.enabled and section.liveness.face_only
    assert section.thresholds("dlib-resnet-v1") == (0.94, 0.951)
    with pytest.raises(ValueError, match="no calibrated thresholds"):
        section.thresholds("sface-0123456789ab")
    with pytest.raises(ValidationError, match="extra"):
        FacesSection.model_validate({"enabled": True, "typo": 1})
    with pytest.raises(ValidationError, match=r"needs faces\.yunet"):
        FacesSection.model_validate({"enabled": True})
    model = {"path": str(tmp_path / "m.onnx"), "sha256": "a" * 64}
    with pytest.raises(ValidationError, match="no calibrated thresholds"):
        FacesSection.model_validate(
            {"enabled": True, "yunet": model, "recognizer": "sface", "sface": model}
        )
    ok = FacesSection.model_validate(
        {
            "enabled": True,
            "yunet": model,
            "recognizer": "sface",
            "sface": model,
            "verify_threshold": 0.4,
            "identify_threshold": 0.5,
        }
    )
    assert ok.encoder_settings().sface is not None
    sections = [FacesSection, *(type(getattr(section, n)) for n in
                                ("camera", "dlib", "quality", "liveness"))]  # fmt: skip
    sections += [OnnxRecognizerConfig, ModelFileConfig]
    for model_class in sections:
        for name, field in model_class.model_fields.items():
            assert field.description, f"{model_class.__name__}.{name}"
