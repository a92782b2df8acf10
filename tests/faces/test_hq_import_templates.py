"""``ykt hq import --templates``: HQ turns registration photos into the terminals' templates."""

import csv
from pathlib import Path

import numpy as np
import pytest

from devtools.hq.db import HqDb
from drivers.camera.images import encode_jpeg
from drivers.face.interface import Encoder
from drivers.face.yunet import YUNET_2023MAR_SHA256
from models.matcher import Template, similarity
from sync.changes import parse_change
from terminal.cli import main
from terminal.config.faces import FacesSection
from terminal.faces.enrol import enrol_photo
from tests.faces.conftest import (
    PERSON_B,
    YUNET,
    need_dlib,
    need_mobilefacenet,
    need_yunet,
    photo_path,
)

COLUMNS = ["序号", "姓名", "性别", "部门", "职务", "办公楼栋", "身份证号", "手机", "办公电话",
           "有效期", "备注"]  # fmt: skip


def sheet_with_photos(tmp_path: Path) -> tuple[Path, Path]:
    sheet = tmp_path / "sheet.csv"
    with sheet.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerow(["1", "王芳", "女", "办公厅", "科员", "市府", "36010219900101123X",
                         "13800001234", "", "2027/12/31", ""])  # fmt: skip
        writer.writerow(["2", "李强", "男", "办公厅", "科员", "市府", "360102199002021237",
                         "13800005678", "", "2027/12/31", ""])  # fmt: skip
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "王芳13800001234.jpg").write_bytes(photo_path(PERSON_B[0]).read_bytes())
    blank = np.full((480, 600, 3), (235, 206, 135), np.uint8)  # light blue, nobody on it
    (photos / "李强13800005678.jpg").write_bytes(encode_jpeg(blank))
    return sheet, photos


def test_templates_are_computed_at_hq_and_match_on_device_enrolment(
    tmp_path: Path, onnx_encoder: Encoder, capsys: pytest.CaptureFixture[str]
) -> None:
    need_dlib()
    need_yunet()
    sheet, photos = sheet_with_photos(tmp_path)
    hq = ["hq", "--dir", str(tmp_path / "hq")]
    assert main([*hq, "init", "--site", "centre"]) == 0
    code = main([*hq, "import", str(sheet), "--unit", "市政府", "--photos", str(photos),
                 "--templates", "onnx", "--yunet", str(YUNET)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1  # one row's photo was refused, and said so
    assert "2 holders imported, 1 face templates" in out
    assert "photo refused (no_face), no template sent" in out
    db = HqDb(tmp_path / "hq")
    faces = db.changes_after(0, 100, kind="face.upsert")
    db.close()
    assert len(faces) == 1 and "photo" not in faces[0]
    change = parse_change(faces[0])
    assert change.model == onnx_encoder.model_id and change.template is not None
    from_hq = np.frombuffer(change.template, "<f4")
    on_device = enrol_photo(
        onnx_encoder,
        photo_path(PERSON_B[0]).read_bytes(),
        FacesSection().quality.for_enrolment(),
    ).template
    assert on_device is not None
    assert similarity(on_device, Template.of(change.model, from_hq)) > 0.999


def test_onnx_templates_need_the_detector_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet, photos = sheet_with_photos(tmp_path)
    hq = ["hq", "--dir", str(tmp_path / "hq")]
    assert main([*hq, "init", "--site", "centre"]) == 0
    with pytest.raises(SystemExit, match="needs --yunet"):
        main([*hq, "import", str(sheet), "--unit", "市政府", "--photos", str(photos),
              "--templates", "onnx"])  # fmt: skip


def test_templates_of_the_model_a_terminal_config_names(
    tmp_path: Path, ncnn_encoder: Encoder, capsys: pytest.CaptureFixture[str]
) -> None:
    """--templates config: HQ computes with the backend and model files of a terminal's
    [faces] section, so an operator-supplied ncnn model's templates carry the terminals' id."""
    settings = need_mobilefacenet()
    config = tmp_path / "gate.toml"
    config.write_text(
        f"""
[terminal]
id = "gate-01"
site = "demo"
state_dir = "{tmp_path}"
[reader]
driver = "sim"
[door]
id = "east-gate"
[gate]
driver = "sim"
[faces]
enabled = true
camera = {{ driver = "sim" }}
yunet = {{ path = "{YUNET}", sha256 = "{YUNET_2023MAR_SHA256}" }}
[faces.ncnn]
param = "{settings.param}"
param_sha256 = "{settings.param_sha256}"
bin = "{settings.bin}"
bin_sha256 = "{settings.bin_sha256}"
"""
    )
    sheet, photos = sheet_with_photos(tmp_path)
    hq = ["hq", "--dir", str(tmp_path / "hq")]
    assert main([*hq, "init", "--site", "centre"]) == 0
    code = main([*hq, "import", str(sheet), "--unit", "市政府", "--photos", str(photos),
                 "--templates", "config", "--faces-config", str(config)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1 and "2 holders imported, 1 face templates" in out
    db = HqDb(tmp_path / "hq")
    faces = db.changes_after(0, 100, kind="face.upsert")
    db.close()
    change = parse_change(faces[0])
    assert change.model == ncnn_encoder.model_id and change.template is not None
    on_device = enrol_photo(
        ncnn_encoder,
        photo_path(PERSON_B[0]).read_bytes(),
        FacesSection().quality.for_enrolment(),
    ).template
    assert on_device is not None
    assert (
        similarity(on_device, Template.of(change.model, np.frombuffer(change.template, "<f4")))
        > 0.999
    )
    with pytest.raises(SystemExit, match="needs --faces-config"):
        main([*hq, "import", str(sheet), "--unit", "市政府", "--photos", str(photos),
              "--templates", "config"])  # fmt: skip
