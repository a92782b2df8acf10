"""A face model changed in the field: the old model decides until HQ has sent enough templates
of the new one, then the terminal restarts into it and says so."""

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from drivers.face.settings import DLIB_MODEL_ID
from drivers.face.yunet import YUNET_2023MAR_SHA256
from models.matcher import Template
from terminal import config as config_module
from terminal.app import App
from terminal.config.faces import CALIBRATED, FacesSection
from terminal.diag.faces import model_facts
from terminal.faces.build import build_face_parts
from terminal.faces.switch import IN_USE_STATE, choose, note_model_in_use
from terminal.store import Store
from terminal.store.faces import FaceStore
from tests.faces.conftest import YUNET, need_dlib, need_mobilefacenet, need_yunet
from tests.fixtures import seed

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
HOLDERS = ("H001", "H002", "H003", "H004")


def section(tmp_path: Path, **extra: object) -> FacesSection:
    ncnn = {"param": str(tmp_path / "m.param"), "param_sha256": "a" * 64,
            "bin": str(tmp_path / "m.bin"), "bin_sha256": "b" * 64}  # fmt: skip
    return FacesSection.model_validate(
        {
            "enabled": True,
            "yunet": {"path": str(YUNET), "sha256": YUNET_2023MAR_SHA256},
            "camera": {"driver": "sim"},
            "recognizer": "dlib",
            "ncnn": ncnn,
            "switch_to": "ncnn",
            "switch_share": 0.75,
            "switch_thresholds": [0.4, 0.5],
        }
        | extra
    )


def enrol(faces: FaceStore, model: str, holders: tuple[str, ...], dim: int = 128) -> None:
    rng = np.random.default_rng(len(holders))
    for holder in holders:
        faces.put_template(holder, Template.of(model, rng.normal(size=dim)), source="hq", at=NOW)


def test_a_switch_is_refused_when_it_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="already in use"):
        section(tmp_path, recognizer="ncnn")
    with pytest.raises(ValidationError, match=r"needs faces\.sface"):
        section(tmp_path, switch_to="sface")
    with pytest.raises(ValidationError, match="switch_thresholds"):
        section(tmp_path, switch_thresholds=None)  # this ncnn model has no calibration
    with pytest.raises(ValidationError, match="cosines"):
        section(tmp_path, switch_thresholds=[0.4, 1.5])
    with pytest.raises(ValidationError, match="switch_share"):
        section(tmp_path, switch_share=0)


def test_each_model_has_its_own_thresholds(tmp_path: Path) -> None:
    faces = section(tmp_path)
    target = faces.model_id_of("ncnn")
    assert target is not None and target.startswith("ncnn-")
    assert faces.thresholds(target) == (0.4, 0.5)
    assert faces.thresholds(DLIB_MODEL_ID) == CALIBRATED[DLIB_MODEL_ID]


def test_the_new_model_is_chosen_once_it_covers_the_share(store: Store, tmp_path: Path) -> None:
    seed(store)
    faces = FaceStore(store)
    config = section(tmp_path)
    target = config.model_id_of("ncnn")
    assert target is not None
    enrol(faces, DLIB_MODEL_ID, HOLDERS)
    assert faces.coverage(target) == 0.0
    waiting = choose(config, faces)
    assert (waiting.kind, waiting.model_id, waiting.target_model) == ("dlib", DLIB_MODEL_ID, target)
    enrol(faces, target, HOLDERS[:2])
    assert faces.coverage(target) == 0.5 and not waiting.due(faces)
    enrol(faces, target, HOLDERS[2:3])  # three of four: 75 %
    assert waiting.due(faces)
    switched = choose(config, faces)
    assert (switched.kind, switched.model_id, switched.target_model) == ("ncnn", target, None)
    assert not switched.due(faces)
    # A holder with only a template of the new model counts as enrolled, too.
    assert FaceStore(store).coverage("nobody-uses-this") == 0.0


def test_every_change_of_model_in_use_is_journalled_once(store: Store) -> None:
    faces = FaceStore(store)
    note_model_in_use(store, faces, DLIB_MODEL_ID, NOW)
    note_model_in_use(store, faces, DLIB_MODEL_ID, NOW)  # a restart on the same model: nothing
    note_model_in_use(store, faces, "ncnn-0123456789ab", NOW)
    with store.read() as conn:
        rows = conn.execute(
            "SELECT type, detail FROM events WHERE type = 'face_model' ORDER BY id"
        ).fetchall()
    assert [r[0] for r in rows] == ["face_model", "face_model"]
    first, second = (json.loads(detail) for _, detail in rows)
    assert first == {"model": DLIB_MODEL_ID, "previous": None, "coverage_permille": 0}
    assert second["previous"] == DLIB_MODEL_ID and second["model"] == "ncnn-0123456789ab"
    assert store.state(IN_USE_STATE) == "ncnn-0123456789ab"


def test_built_parts_use_the_old_model_until_the_new_one_is_covered(store: Store) -> None:
    need_yunet()
    need_dlib()
    ncnn = need_mobilefacenet()
    seed(store)
    config = FacesSection.model_validate(
        {
            "enabled": True,
            "yunet": {"path": str(YUNET), "sha256": YUNET_2023MAR_SHA256},
            "camera": {"driver": "sim"},
            "recognizer": "dlib",
            "ncnn": ncnn.model_dump(mode="json"),
            "switch_to": "ncnn",
            "switch_share": 0.5,
        }
    )
    faces = FaceStore(store)
    target = ncnn.model_id()
    enrol(faces, DLIB_MODEL_ID, HOLDERS)
    enrol(faces, target, HOLDERS[:1])
    parts = build_face_parts(config, store)
    try:
        assert parts.encoder.model_id == DLIB_MODEL_ID and parts.verifier.gallery_size() == 4
        assert not parts.switch_due
        enrol(faces, target, HOLDERS[1:2])  # HQ sends another: half the holders now
        assert parts.switch_due
    finally:
        parts.close()
    parts = build_face_parts(config, store)  # what the restart builds
    try:
        assert parts.encoder.model_id == target and parts.verifier.gallery_size() == 2
        assert parts.verifier.settings.verify_threshold == CALIBRATED[target][0]
        assert not parts.switch_due
    finally:
        parts.close()


def test_the_terminal_restarts_into_the_new_model_when_hq_has_sent_enough(
    tmp_path: Path,
) -> None:
    need_yunet()
    need_dlib()
    ncnn = need_mobilefacenet()
    state = tmp_path / "state"
    store = Store.open(state / "terminal.db")
    seed(store)
    enrol(FaceStore(store), DLIB_MODEL_ID, HOLDERS)
    store.close()
    config = config_module.parse(
        {
            "terminal": {"id": "gate-01", "site": "demo-centre", "state_dir": str(state)},
            "door": {"id": "east-gate", "direction": "in", "open_seconds": 2},
            "reader": {"driver": "sim"},
            "gate": {"driver": "sim"},
            "faces": {
                "enabled": True,
                "recognizer": "dlib",
                "yunet": {"path": str(YUNET), "sha256": YUNET_2023MAR_SHA256},
                "camera": {"driver": "sim"},
                "ncnn": ncnn.model_dump(mode="json"),
                "switch_to": "ncnn",
                "switch_share": 1.0,
            },
        }
    )
    app = App(config)
    try:
        assert app.face_parts is not None
        assert app.face_parts.encoder.model_id == DLIB_MODEL_ID
        app.housekeep(NOW)
        assert not app.reload_due
        enrol(app.face_parts.faces, ncnn.model_id(), HOLDERS)  # HQ's face.upsert of each
        app.housekeep(NOW)
        assert app.reload_due and app.restart_due
    finally:
        app.close()
    again = App(config)  # what the daemon's reload builds from the same file
    try:
        assert again.face_parts is not None
        assert again.face_parts.encoder.model_id == ncnn.model_id()
        assert not again.reload_due
        report = model_facts(again.face_parts)
        assert report["in_use"] == ncnn.model_id() and "switch" not in report
        assert report["templates"] == {DLIB_MODEL_ID: 4, ncnn.model_id(): 4}
        with again.store.read() as conn:
            models = [json.loads(d)["model"] for (d,) in conn.execute(
                "SELECT detail FROM events WHERE type = 'face_model' ORDER BY id")]  # fmt: skip
        assert models == [DLIB_MODEL_ID, ncnn.model_id()]
    finally:
        again.close()
