"""The FaceVerifier end to end: a simulated camera playing real photos, the real encoder, the
store's templates; card+face (1:1), face only (1:N), liveness and the evidence rule."""

from datetime import UTC, datetime

import numpy as np
import pytest

from drivers.camera.sim import SimCamera, SimCameraControl
from drivers.face.interface import Detection, Encoder
from drivers.face.quality import Rejection
from drivers.liveness.interface import LivenessResult
from terminal.config.faces import CALIBRATED, FacesSection
from terminal.faces.enrol import enrol_image
from terminal.faces.verifier import FaceOutcome, FaceVerifier, VerifierSettings
from terminal.store.faces import FaceStore
from tests.faces.conftest import (
    PERSON_A,
    PERSON_B,
    PERSON_C,
    TURNED_AWAY,
    photo,
    photo_path,
)

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
VERIFY, IDENTIFY = CALIBRATED["dlib-resnet-v1"]


class FakeLiveness:
    """A liveness check that answers as told (the real one is tested on its own)."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self.calls = 0

    def check(self, frame: np.ndarray, face: Detection) -> LivenessResult:
        self.calls += 1
        return LivenessResult(self.live, 0.99 if self.live else 0.02)


def enrol(faces: FaceStore, encoder: Encoder, holder: str, relative: str) -> None:
    result = enrol_image(encoder, photo(relative), FacesSection().quality.for_enrolment())
    assert result.template is not None, result.rejection
    faces.put_template(holder, result.template, source="device", at=NOW)


@pytest.fixture
def rig(faces: FaceStore, onnx_encoder: Encoder):  # type: ignore[no-untyped-def]
    for holder, person in (("alice", PERSON_A), ("bob", PERSON_B), ("carol", PERSON_C)):
        enrol(faces, onnx_encoder, holder, person[0])
    control = SimCameraControl(640, 480)
    camera = SimCamera(control)

    def make(**overrides: object) -> FaceVerifier:
        liveness = overrides.pop("liveness", None)
        settings = VerifierSettings(VERIFY, IDENTIFY, **overrides)  # type: ignore[arg-type]
        return FaceVerifier(camera=camera, encoder=onnx_encoder, faces=faces, settings=settings,
                            liveness=liveness)  # type: ignore[arg-type]  # fmt: skip

    return control, make


def test_card_holder_in_front_of_the_camera_matches(rig) -> None:  # type: ignore[no-untyped-def]
    control, make = rig
    control.show_files([photo_path(PERSON_A[1])])
    result = make().verify("alice", timeout=10)
    assert result.outcome is FaceOutcome.MATCH, result
    assert result.score is not None and result.score >= VERIFY
    assert result.evidence is None  # an ordinary passage keeps no image


def test_someone_else_with_the_card_is_a_mismatch_with_evidence(rig) -> None:  # type: ignore[no-untyped-def]
    control, make = rig
    control.show_files([photo_path(PERSON_B[1])])
    result = make(best_of=2, attempts=2).verify("alice", timeout=10)
    assert result.outcome is FaceOutcome.MISMATCH
    assert result.score is not None and result.score < VERIFY
    assert result.evidence is not None and result.evidence.shape == (480, 640, 3)
    assert result.frames == 4  # two attempts of best-of-2


def test_no_usable_face_before_the_deadline_says_why(rig) -> None:  # type: ignore[no-untyped-def]
    control, make = rig
    control.show_files([photo_path(TURNED_AWAY)])
    result = make().verify("alice", timeout=0.8)
    assert result.outcome is FaceOutcome.NO_FACE
    assert result.rejection is Rejection.POSE
    control.clear()
    assert make().verify("alice", timeout=0.3).rejection is Rejection.NO_FACE


def test_an_unplugged_camera_and_a_holder_without_template(rig) -> None:  # type: ignore[no-untyped-def]
    control, make = rig
    assert make().verify("nobody", timeout=1).outcome is FaceOutcome.NO_TEMPLATE
    control.unplug()
    assert make().verify("alice", timeout=0.2).outcome is FaceOutcome.CAMERA_FAULT


def test_face_only_names_the_enrolled_person(rig) -> None:  # type: ignore[no-untyped-def]
    control, make = rig
    liveness = FakeLiveness(True)
    control.show_files([photo_path(PERSON_B[1])])
    result = make(liveness=liveness).identify(timeout=10)
    assert result.outcome is FaceOutcome.MATCH, result
    assert result.holder_id == "bob"
    assert result.frames == 2  # two of three frames agreed
    assert liveness.calls == 1


def test_face_only_refuses_strangers_spoofs_and_oversized_galleries(rig) -> None:  # type: ignore[no-untyped-def]
    control, make = rig
    control.show_files([photo_path("Gerhard_Schroeder/Gerhard_Schroeder_0004.jpg")])
    stranger_gallery = make(liveness_face_only=False)
    stranger_gallery.faces.remove_template("carol")
    stranger_gallery.reload()
    result = stranger_gallery.identify(timeout=1.0)
    assert result.outcome is FaceOutcome.UNKNOWN and result.holder_id is None

    spoof = make(liveness=FakeLiveness(False))
    control.show_files([photo_path(PERSON_B[1])])
    result = spoof.identify(timeout=10)
    assert result.outcome is FaceOutcome.NOT_LIVE and result.evidence is not None
    assert make(max_gallery=1).identify(timeout=1).outcome is FaceOutcome.GALLERY_TOO_LARGE
    # Liveness required but none configured: refused, never treated as live.
    assert make().identify(timeout=1).outcome is FaceOutcome.LIVENESS_UNAVAILABLE
    assert make(liveness_card_and_face=True).verify("bob", 1).outcome is (
        FaceOutcome.LIVENESS_UNAVAILABLE
    )


def test_gallery_follows_the_store_one_holder_at_a_time(rig, faces: FaceStore) -> None:  # type: ignore[no-untyped-def]
    control, make = rig
    verifier = make(liveness_face_only=False)
    assert verifier.gallery_size() == 3
    faces.remove_template("bob")
    verifier.refresh("bob")
    assert verifier.gallery_size() == 2
    control.show_files([photo_path(PERSON_B[1])])
    assert verifier.identify(timeout=1.0).holder_id is None
    faces.put_template("bob", faces_template(verifier, PERSON_B[0]), source="hq", at=NOW)
    verifier.refresh("bob")
    assert verifier.identify(timeout=10).holder_id == "bob"


def faces_template(verifier: FaceVerifier, relative: str):  # type: ignore[no-untyped-def]
    result = enrol_image(verifier.encoder, photo(relative), FacesSection().quality)
    assert result.template is not None
    return result.template


def test_reload_only_when_the_store_changed(rig, faces: FaceStore) -> None:  # type: ignore[no-untyped-def]
    _, make = rig
    verifier = make()
    assert not verifier.reload_if_changed()
    faces.remove_template("carol")
    assert verifier.reload_if_changed()
    assert verifier.gallery_size() == 2
