"""``ykt faces calibrate`` on a small labelled set, the ROC arithmetic, and the [faces] schema."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from drivers.face.modelfile import ModelFile
from drivers.face.settings import (
    MOBILEFACENET_BIN_SHA256,
    MOBILEFACENET_PARAM_SHA256,
    NcnnRecognizerSettings,
    OnnxRecognizerSettings,
    QualitySettings,
    YuNetSettings,
)
from terminal.config.faces import (
    CALIBRATED,
    CALIBRATED_GALLERY,
    FacesSection,
)
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
    sections += [OnnxRecognizerSettings, ModelFile, NcnnRecognizerSettings, YuNetSettings]
    for model_class in sections:
        for name, field in model_class.model_fields.items():
            assert field.description, f"{model_class.__name__}.{name}"


def _ncnn(tmp_path: Path, **extra: object) -> dict[str, object]:
    files = {"param": str(tmp_path / "m.param"), "param_sha256": MOBILEFACENET_PARAM_SHA256,
             "bin": str(tmp_path / "m.bin"), "bin_sha256": MOBILEFACENET_BIN_SHA256}  # fmt: skip
    return {**files, **extra}


def test_ncnn_is_the_default_recognizer_once_its_files_are_configured(tmp_path: Path) -> None:
    yunet = {"path": str(tmp_path / "y.onnx"), "sha256": "a" * 64}
    plain = FacesSection.model_validate({"enabled": True, "yunet": yunet})
    assert plain.recognizer_kind == "dlib" and plain.encoder_settings().ncnn is None
    section = FacesSection.model_validate(
        {"enabled": True, "yunet": yunet, "ncnn": _ncnn(tmp_path)}
    )
    assert section.recognizer_kind == "ncnn"
    settings = section.encoder_settings()
    assert settings.recognizer == "ncnn" and settings.ncnn is not None
    assert settings.ncnn.rgb and settings.ncnn.input_blob == "data"
    assert settings.refine is not None and settings.refine.below == 80
    model = section.expected_model_id()
    assert model is not None and model.startswith("ncnn-")
    # The development model is calibrated: thresholds and capacity come without configuring.
    assert section.thresholds(model) == CALIBRATED[model]
    assert section.gallery_limit(model) == CALIBRATED_GALLERY[model] > 1000
    assert section.gallery_limit("sface-0123456789ab") == 1000
    # dlib stays available next to a configured ncnn model.
    chosen = FacesSection.model_validate(
        {"enabled": True, "yunet": yunet, "ncnn": _ncnn(tmp_path), "recognizer": "dlib"}
    )
    assert chosen.recognizer_kind == "dlib" and chosen.encoder_settings().ncnn is None
    no_refine = _ncnn(tmp_path, refine_below=0)
    assert (
        FacesSection.model_validate({"enabled": True, "yunet": yunet, "ncnn": no_refine})
        .encoder_settings()
        .refine
        is None
    )


def test_ncnn_models_other_than_the_calibrated_one_need_thresholds(tmp_path: Path) -> None:
    yunet = {"path": str(tmp_path / "y.onnx"), "sha256": "a" * 64}
    own = _ncnn(tmp_path, bin_sha256="b" * 64)
    with pytest.raises(ValidationError, match="no calibrated thresholds"):
        FacesSection.model_validate({"enabled": True, "yunet": yunet, "ncnn": own})
    flipped = _ncnn(tmp_path, flip=True)  # another template space: not the calibrated id
    with pytest.raises(ValidationError, match="no calibrated thresholds"):
        FacesSection.model_validate({"enabled": True, "yunet": yunet, "ncnn": flipped})
    FacesSection.model_validate({"enabled": True, "yunet": yunet, "ncnn": own,
                                 "verify_threshold": 0.4, "identify_threshold": 0.5})  # fmt: skip
    with pytest.raises(ValidationError, match=r"needs faces\.ncnn"):
        FacesSection.model_validate({"enabled": True, "yunet": yunet, "recognizer": "ncnn"})
    with pytest.raises(ValidationError, match="String should match pattern"):
        FacesSection.model_validate(
            {"enabled": True, "yunet": yunet, "ncnn": _ncnn(tmp_path, param_sha256="xyz")}
        )


def test_the_drivers_get_the_config_sections_themselves(tmp_path: Path) -> None:
    """One definition per setting: what the file says reaches the driver unchanged, defaults and
    limits included, with no second class in between to drift from it."""
    yunet = {"path": str(tmp_path / "y.onnx"), "sha256": "a" * 64, "max_width": 320}
    section = FacesSection.model_validate(
        {
            "enabled": True,
            "yunet": yunet,
            "ncnn": _ncnn(tmp_path, threads=2),
            "dlib": {"upsample": 1},
            "quality": {"min_score": 0.7, "enrol_min_sharpness": 50},
        }
    )
    settings = section.encoder_settings()
    assert settings.yunet is section.yunet and settings.yunet is not None
    assert settings.yunet.max_width == 320
    assert settings.ncnn is section.ncnn and settings.dlib_hog is section.dlib
    enrol = section.quality.for_enrolment()
    assert (enrol.min_score, enrol.min_sharpness) == (0.7, 50)
    assert section.quality.min_sharpness == QualitySettings().min_sharpness
    with pytest.raises(ValidationError, match="pitch_range"):
        FacesSection.model_validate({"quality": {"pitch_range": [0.8, 0.2]}})
    with pytest.raises(ValidationError, match="top_k"):
        FacesSection.model_validate({"yunet": {**yunet, "top_k": 0}})
