"""Enrolment rejections on real photos, the face tables, and the privacy purge."""

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest

from drivers.camera.images import encode_jpeg
from drivers.face.interface import Encoder
from drivers.face.quality import Rejection
from drivers.face.settings import QualitySettings
from models.errors import DriverError
from models.journal import TransactionDraft
from models.matcher import Template
from models.reasons import Reason
from terminal.faces.enrol import enrol_image, enrol_pending, enrol_photo
from terminal.store import SecurityEvent, Store
from terminal.store.faces import FaceStore
from tests.faces.conftest import PERSON_A, PERSON_B, photo

ENROL = QualitySettings().for_enrolment()
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def vec(*values: float) -> Template:
    return Template.of("dlib-resnet-v1", np.asarray(values, np.float32))


def test_a_clear_single_face_is_enrolled(onnx_encoder: Encoder) -> None:
    result = enrol_image(onnx_encoder, photo(PERSON_A[1]), ENROL)
    assert result.ok and result.rejection is None
    assert result.template is not None and result.template.model == "dlib-resnet-v1"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: np.full((480, 600, 3), (235, 206, 170), np.uint8), Rejection.NO_FACE),
        (lambda: np.hstack([photo(PERSON_A[1]), photo(PERSON_B[0])]), Rejection.MULTIPLE_FACES),
        (lambda: cv2.resize(photo(PERSON_A[1]), (150, 150)), Rejection.TOO_SMALL),
        (lambda: cv2.GaussianBlur(photo(PERSON_A[1]), (0, 0), 3), Rejection.TOO_BLURRY),
    ],
    ids=["no-face", "two-faces", "too-small", "too-blurry"],
)
def test_unusable_photos_are_rejected_with_the_reason(
    onnx_encoder: Encoder, make: object, reason: Rejection
) -> None:
    image = np.asarray(make(), np.uint8)  # type: ignore[operator]
    result = enrol_image(onnx_encoder, image, ENROL)
    assert not result.ok
    assert result.rejection is reason


def test_bytes_that_are_not_a_photo_are_an_error(onnx_encoder: Encoder) -> None:
    with pytest.raises(DriverError, match="not a readable"):
        enrol_photo(onnx_encoder, b"not a jpeg", ENROL)


def test_templates_round_trip_per_model(faces: FaceStore) -> None:
    faces.put_template("h1", vec(1, 0, 0), source="device", at=NOW)
    faces.put_template("h1", Template.of("sface-abc", [0, 1, 0]), source="hq", at=NOW)
    got = faces.get_template("h1", "dlib-resnet-v1")
    assert got is not None and np.allclose(got.vector, [1, 0, 0])
    assert faces.models() == {"dlib-resnet-v1": 1, "sface-abc": 1}
    assert [r.holder_id for r in faces.templates("sface-abc")] == ["h1"]
    assert faces.remove_template("h1", "sface-abc") == 1
    assert faces.get_template("h1", "sface-abc") is None


def _hq_face(store: Store, holder: str, template: bytes | None, photo: bytes | None) -> None:
    # What the sync port does for face.upsert (migration 0005's table).
    with store.write() as conn:
        conn.execute(
            "INSERT INTO faces (holder_id, model, template, photo, change_seq) "
            "VALUES (?, ?, ?, ?, 1) ON CONFLICT (holder_id) DO UPDATE SET model = excluded.model, "
            "template = excluded.template, photo = excluded.photo",
            (holder, "dlib-resnet-v1" if template else None, template, photo),
        )


def test_hq_templates_are_mirrored_and_face_delete_removes_them(
    store: Store, faces: FaceStore
) -> None:
    _hq_face(store, "h1", vec(0, 1, 0).to_bytes(), None)
    got = faces.get_template("h1", "dlib-resnet-v1")
    assert got is not None and np.allclose(got.vector, [0, 1, 0])
    _hq_face(store, "h1", vec(0, 0, 1).to_bytes(), None)  # update
    got = faces.get_template("h1", "dlib-resnet-v1")
    assert got is not None and np.allclose(got.vector, [0, 0, 1])
    with store.write() as conn:
        conn.execute("DELETE FROM faces WHERE holder_id = 'h1'")  # face.delete
    assert faces.get_template("h1", "dlib-resnet-v1") is None


def test_registration_photos_are_enrolled_then_deleted(
    store: Store, faces: FaceStore, onnx_encoder: Encoder
) -> None:
    _hq_face(store, "good", None, encode_jpeg(photo(PERSON_A[1]), 95))
    _hq_face(store, "blank", None, encode_jpeg(np.full((480, 600, 3), 200, np.uint8)))
    _hq_face(store, "junk", None, b"garbage")
    result = enrol_pending(faces, onnx_encoder, ENROL, now=NOW)
    assert result.enrolled == ["good"]
    assert result.rejected["blank"] == "no_face"
    assert result.rejected["junk"].startswith("unreadable")
    assert faces.pending_photos() == []  # no photo stays on the terminal
    with store.read() as conn:
        assert conn.execute("SELECT count(*) FROM faces WHERE photo IS NOT NULL").fetchone()[0] == 0
    assert faces.get_template("good", "dlib-resnet-v1") is not None


def test_stills_expire_after_their_retention(faces: FaceStore) -> None:
    faces.add_still(b"\xff\xd8jpeg", kind="face_mismatch", at=NOW, retention=timedelta(days=30),
                    holder_id="h1")  # fmt: skip
    faces.add_still(b"\xff\xd8jpeg", kind="card_lost", at=NOW, retention=timedelta(days=1))
    assert faces.expire_stills(NOW + timedelta(days=2)) == 1
    assert [kind for _, kind, _ in faces.stills()] == ["face_mismatch"]
    assert faces.expire_stills(NOW + timedelta(days=31)) == 1
    assert faces.stills() == []


def test_purging_a_holder_removes_templates_stills_and_photos(
    store: Store, faces: FaceStore
) -> None:
    for holder in ("h1", "h2"):
        faces.put_template(holder, vec(1, 1, 0), source="device", at=NOW)
        faces.add_still(b"jpeg", kind="face_mismatch", at=NOW, retention=timedelta(days=30),
                        holder_id=holder)  # fmt: skip
    _hq_face(store, "h1", None, b"photo")
    purged = faces.purge_holder("h1")
    assert (purged.templates, purged.stills, purged.photos) == (1, 1, 1)
    assert faces.get_template("h1", "dlib-resnet-v1") is None and faces.stills("h1") == []
    assert faces.get_template("h2", "dlib-resnet-v1") is not None and faces.stills("h2")


def test_deleting_the_holder_row_purges_face_data_in_the_same_transaction(
    store: Store, faces: FaceStore
) -> None:
    with store.write() as conn:
        conn.execute("INSERT INTO holders (id, name, card_class) VALUES ('h9', 'x', 'red')")
    faces.put_template("h9", vec(1, 0, 1), source="device", at=NOW)
    faces.add_still(b"jpeg", kind="face_mismatch", at=NOW, retention=timedelta(days=30),
                    holder_id="h9")  # fmt: skip
    with store.write() as conn:  # what holder.delete does
        conn.execute("DELETE FROM holders WHERE id = 'h9'")
    assert faces.get_template("h9", "dlib-resnet-v1") is None
    assert faces.stills("h9") == []


def test_quality_settings_from_config_are_stricter_for_enrolment() -> None:
    gate, enrol = QualitySettings(), QualitySettings().for_enrolment()
    assert isinstance(gate, QualitySettings)
    assert enrol.min_eye_distance > gate.min_eye_distance
    assert enrol.min_sharpness > gate.min_sharpness


def test_a_still_is_linked_to_the_event_of_its_transaction(store: Store, faces: FaceStore) -> None:
    draft = TransactionDraft(kind="door", at=NOW.isoformat(), mono_ns=1, credential="card",
                             decision="deny", reason=Reason.NO_ACCESS, view_seq=0,
                             holder_id="h1")  # fmt: skip
    committed = store.commit(draft, SecurityEvent("card_lending", {"score_milli": 500}))
    with store.read() as conn:
        (event_id,) = conn.execute(
            "SELECT id FROM events WHERE tx_seq = ?", (committed.seq,)
        ).fetchone()
    still = faces.add_still(b"jpeg", kind="card_lending", at=NOW, retention=timedelta(days=1),
                            holder_id="h1", tx_seq=committed.seq)  # fmt: skip
    assert faces.still(still) == (event_id, b"jpeg")
    assert faces.still(still + 100) is None
