"""Card + face at the door, end to end: simulated reader, gate and camera (real photos), the
real encoder and store. The card of H001 is tapped; the camera shows H001, or someone else."""

from collections.abc import Callable
from datetime import timedelta

import pytest

from drivers.camera.sim import SimCamera, SimCameraControl
from drivers.face.interface import Encoder
from drivers.sim import SimGateControl
from terminal.clock import SetClock
from terminal.config.faces import CALIBRATED, FacesSection
from terminal.faces.enrol import enrol_image
from terminal.faces.evidence import FaceUse
from terminal.faces.verifier import FaceVerifier, VerifierSettings
from terminal.flows.door import DoorSettings, TapOutcome
from terminal.store import Store
from terminal.store.faces import FaceStore
from tests.faces.conftest import PERSON_A, PERSON_B, TURNED_AWAY, photo, photo_path
from tests.factories import MONDAY_9, presented
from tests.fixtures import DOOR, card_number, seed
from tests.loops import door_loop, present


class Door:
    def __init__(self, store: Store, encoder: Encoder, face: str) -> None:
        seed(store)
        self.store = store
        self.faces = FaceStore(store)
        enrolled = enrol_image(encoder, photo(PERSON_A[0]), FacesSection().quality)
        assert enrolled.template is not None
        self.faces.put_template("H001", enrolled.template, source="device", at=MONDAY_9)
        self.camera = SimCameraControl(640, 480)
        verify, identify = CALIBRATED[encoder.model_id]
        verifier = FaceVerifier(camera=SimCamera(self.camera), encoder=encoder, faces=self.faces,
                                settings=VerifierSettings(verify, identify))  # fmt: skip
        self.gate = SimGateControl(delay=0)
        self.uses = FaceUse(verifier, self.faces, seconds=5.0, retention=timedelta(days=30))
        self.face = face
        self.face_seconds = 5.0  # how long the card + face check may take
        self.listeners: list[Callable[[object], None]] = []

    def tap(self, n: int) -> None:
        settings = DoorSettings(
            DOOR, "in", open_seconds=0.05, face=self.face, face_seconds=self.face_seconds
        )
        loop = door_loop(self.store, settings, SetClock(MONDAY_9), gate=self.gate, faces=self.uses)
        loop.flow.listeners.extend(self.listeners)
        present(loop, presented(card_number(n)))

    def first(self) -> dict[str, object]:
        return self.store.records()[0]


@pytest.fixture
def door(store: Store, onnx_encoder: Encoder) -> Door:
    return Door(store, onnx_encoder, face="always")


def test_card_and_the_holders_face_open_the_gate_and_keep_no_image(door: Door) -> None:
    door.camera.show_files([photo_path(PERSON_A[1])])
    door.tap(1)
    record = door.first()
    assert (record["decision"], record["reason"]) == ("allow", "allowed")
    assert isinstance(record["face_score"], int) and record["face_score"] >= 940
    assert door.gate.openings == ["in"]
    assert door.faces.stills() == []


def test_a_lent_card_is_denied_with_a_lending_event_and_a_still(door: Door) -> None:
    door.camera.show_files([photo_path(PERSON_B[1])])
    door.tap(1)
    record = door.first()
    assert (record["decision"], record["reason"]) == ("deny", "face_mismatch")
    assert door.gate.openings == []
    with door.store.read() as conn:
        (kind,) = conn.execute("SELECT type FROM events").fetchone()
    assert kind == "card_lending"
    stills = door.faces.stills("H001")
    assert [k for _, k, _ in stills] == ["card_lending"]


def test_no_face_in_time_is_denied_without_an_alarm(door: Door) -> None:
    door.camera.clear()
    door.face_seconds = 0.5
    door.tap(1)
    assert door.first()["reason"] == "face_required"
    with door.store.read() as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_a_lost_card_is_denied_before_any_face_check(door: Door) -> None:
    door.camera.show_files([photo_path(PERSON_A[1])])
    door.tap(5)
    assert door.first()["reason"] == "card_lost"
    assert door.first().get("face_score") is None


def test_holder_mode_checks_only_holders_marked_by_hq(store: Store, onnx_encoder: Encoder) -> None:
    door = Door(store, onnx_encoder, face="holder")
    door.camera.show_files([photo_path(PERSON_B[1])])  # not H001's face, but not required
    door.tap(1)
    assert door.first()["reason"] == "allowed"


def test_the_person_is_told_why_no_frame_was_usable(door: Door) -> None:
    told: list[object] = []
    door.listeners = [told.append]
    door.camera.show_files([photo_path(TURNED_AWAY)])
    door.face_seconds = 1.0
    door.tap(1)
    [outcome] = [t for t in told if isinstance(t, TapOutcome)]
    assert outcome.decision.reason == "face_required"
    assert outcome.decision.detail == "face no_face (pose)"
