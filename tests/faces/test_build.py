"""Building the face parts from a real [faces] section, as the composition root will."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.camera.images import encode_jpeg
from drivers.camera.sim import SimCameraControl
from drivers.face.modelfile import ModelFile
from drivers.face.yunet import YUNET_2023MAR_SHA256
from models.errors import DriverError
from terminal.config.faces import FacesSection
from terminal.faces.build import build_face_parts
from terminal.faces.verifier import FaceOutcome
from terminal.store import Store
from tests.faces.conftest import PERSON_A, YUNET, need_dlib, need_yunet, photo, photo_path

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def section(**extra: object) -> FacesSection:
    return FacesSection.model_validate(
        {
            "enabled": True,
            "yunet": {"path": str(YUNET), "sha256": YUNET_2023MAR_SHA256},
            "camera": {"driver": "sim"},
        }
        | extra
    )


def test_parts_enrol_hq_photos_and_verify_a_card_holder(store: Store) -> None:
    need_yunet()
    need_dlib()
    control = SimCameraControl(640, 480)
    parts = build_face_parts(section(), store, control)
    try:
        with store.write() as conn:  # a registration photo from HQ (face.upsert)
            conn.execute(
                "INSERT INTO faces (holder_id, photo, change_seq) VALUES ('H1', ?, 1)",
                (encode_jpeg(photo(PERSON_A[0]), 95),),
            )
        assert parts.enrol_pending(NOW).enrolled == ["H1"]
        assert parts.verifier.gallery_size() == 1
        control.show_files([photo_path(PERSON_A[1])])
        assert parts.verifier.verify("H1", timeout=10).outcome is FaceOutcome.MATCH
        # Face only needs liveness and none is configured: refused, not waved through.
        assert parts.verifier.identify(timeout=1).outcome is FaceOutcome.LIVENESS_UNAVAILABLE
        parts.faces.add_still(b"jpeg", kind="card_lending", at=NOW, retention=timedelta(days=1))
        parts.housekeeping(NOW + timedelta(days=2))
        assert parts.faces.stills() == []
    finally:
        parts.close()


def test_a_wrong_model_hash_fails_at_start(store: Store, tmp_path: Path) -> None:
    need_yunet()
    bad = section(yunet={"path": str(YUNET), "sha256": "0" * 64})
    with pytest.raises(DriverError, match="sha256"):
        build_face_parts(bad, store, SimCameraControl())
    assert ModelFile(path=YUNET, sha256=YUNET_2023MAR_SHA256).verified() == YUNET
