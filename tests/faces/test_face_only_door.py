"""Face-only passage (1:N) at a gate, end to end: the watch thread identifies real photos played
by the simulated camera, the door flow decides on the holder's current card, the real store
journals it. Plus the watch's one-event-per-person rule on its own."""

import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from drivers.camera.sim import SimCamera, SimCameraControl
from drivers.face.interface import Encoder
from drivers.sim import SimGateControl
from terminal.clock import SetClock
from terminal.config.faces import CALIBRATED
from terminal.faces.evidence import FaceUse
from terminal.faces.verifier import FaceOutcome, FaceResult, FaceVerifier, VerifierSettings
from terminal.faces.watch import FaceGone, FaceNotRecognised, FaceSeen, FaceSpoofed, FaceWatch
from terminal.flows.door import DoorSettings, FlowNotice, Notice, TapOutcome
from terminal.store import Store
from terminal.store.faces import FaceStore
from tests.faces.conftest import PERSON_A, PERSON_B, PERSON_C, photo_path
from tests.faces.test_verifier import FakeLiveness, enrol
from tests.factories import MONDAY_9, presented
from tests.fixtures import DOOR, card_number, seed
from tests.loops import door_loop, present

# --- the watch on its own: what it tells the flow about a sequence of identification results --


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watch_alone(faces: FaceStore) -> tuple[FaceWatch, Ticks]:
    ticks = Ticks()
    watch = FaceWatch(None, faces, seconds=1, repeat_seconds=5, retention=timedelta(0),  # type: ignore[arg-type]
                      clock=ticks)  # fmt: skip
    return watch, ticks


def drain(watch: FaceWatch) -> list[object]:
    events = []
    while (event := watch.take()) is not None:
        events.append(event)
    return events


def match(holder: str) -> FaceResult:
    return FaceResult(FaceOutcome.MATCH, holder, 0.973, 0.951)


def test_one_event_per_person_not_per_frame(faces: FaceStore) -> None:
    watch, ticks = watch_alone(faces)
    watch.observe(match("H001"))
    ticks.now = 1
    watch.observe(match("H001"))  # still standing there
    [seen] = drain(watch)
    assert isinstance(seen, FaceSeen) and seen.credential.holder_id == "H001"
    assert seen.credential.score_milli == 973
    # Somebody else steps up: a new presentation at once.
    watch.observe(match("H002"))
    assert [type(e) for e in drain(watch)] == [FaceSeen]


def test_leaving_or_waiting_long_enough_makes_the_next_face_new(faces: FaceStore) -> None:
    watch, ticks = watch_alone(faces)
    watch.observe(match("H001"))
    watch.observe(FaceResult(FaceOutcome.NO_FACE))
    watch.observe(FaceResult(FaceOutcome.NO_FACE))  # only one "gone" per departure
    watch.observe(match("H001"))
    assert [type(e) for e in drain(watch)] == [FaceSeen, FaceGone, FaceSeen]
    # Standing still keeps it one presentation however long; 5 s without them makes it new.
    for second in (3, 6, 9):
        ticks.now = second
        watch.observe(match("H001"))
    assert drain(watch) == []
    ticks.now = 15
    watch.observe(match("H001"))
    assert [type(e) for e in drain(watch)] == [FaceSeen]


def test_strangers_and_spoofs_are_told_once(faces: FaceStore) -> None:
    watch, _ = watch_alone(faces)
    for _ in range(3):
        watch.observe(FaceResult(FaceOutcome.UNKNOWN, None, 0.62, 0.951))
    watch.observe(FaceResult(FaceOutcome.NOT_LIVE, "H001", 0.97, 0.951))
    watch.observe(FaceResult(FaceOutcome.NOT_LIVE, "H001", 0.97, 0.951))
    events = drain(watch)
    assert [type(e) for e in events] == [FaceNotRecognised, FaceSpoofed]
    assert isinstance(events[0], FaceNotRecognised) and events[0].outcome is FaceOutcome.UNKNOWN


# --- the gate, end to end ---------------------------------------------------------------------


class FaceGate:
    def __init__(self, store: Store, encoder: Encoder, *, live: bool = True) -> None:
        seed(store)
        self.store = store
        self.faces = FaceStore(store)
        enrol(self.faces, encoder, "H001", PERSON_B[0])
        enrol(self.faces, encoder, "H005", PERSON_C[0])  # H005's only card is reported lost
        self.camera = SimCameraControl(640, 480)
        verify, identify = CALIBRATED[encoder.model_id]
        self.verifier = FaceVerifier(
            camera=SimCamera(self.camera),
            encoder=encoder,
            faces=self.faces,
            settings=VerifierSettings(verify, identify),
            liveness=FakeLiveness(live),  # type: ignore[arg-type]
        )
        self.watch = FaceWatch(self.verifier, self.faces, seconds=1.0, repeat_seconds=30,
                               retention=timedelta(days=30))  # fmt: skip
        self.gate = SimGateControl(delay=0)
        self.loop = door_loop(
            store,
            DoorSettings(DOOR, "in", open_seconds=0.05, face="always"),
            SetClock(MONDAY_9),
            gate=self.gate,
            faces=FaceUse(self.verifier, self.faces, seconds=5.0, retention=timedelta(days=30)),
            watch=self.watch,
        )
        self.flow = self.loop.flow
        self.told: list[TapOutcome | FlowNotice] = []
        self.flow.listeners.append(self.told.append)

    def run_until(self, done: Callable[[], object], seconds: float = 20.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.loop.turn(0.05)
            if done():
                return
        raise AssertionError(f"not done within {seconds} s; told {self.told}")

    def records(self) -> list[dict[str, object]]:
        return [r for r in self.store.records() if r["kind"] == "door"]


@pytest.fixture
def gate(store: Store, onnx_encoder: Encoder) -> Iterator[FaceGate]:
    rig = FaceGate(store, onnx_encoder)
    rig.watch.start()
    yield rig
    rig.watch.stop()


def test_an_enrolled_holder_passes_by_face_once_while_standing_there(gate: FaceGate) -> None:
    gate.camera.show_files([photo_path(PERSON_B[1])])
    gate.run_until(gate.records)
    [record] = gate.records()
    assert (record["decision"], record["reason"]) == ("allow", "allowed")
    assert record["credential"] == "face"
    assert record["holder_id"] == "H001" and record["card"] == card_number(1)
    assert isinstance(record["face_score"], int) and record["face_score"] >= 951
    assert gate.gate.openings == ["in"]
    # Still in front of the camera a while later: not a second passage.
    time.sleep(1.5)
    gate.run_until(lambda: True, 1.0)
    assert len(gate.records()) == 1
    assert gate.faces.stills() == []  # an ordinary passage keeps no image


def test_a_holder_whose_card_is_lost_still_passes_by_face(gate: FaceGate) -> None:
    # RULES.md "Credentials and standing": the lost card is void, its holder is not.
    gate.camera.show_files([photo_path(PERSON_C[1])])
    gate.run_until(gate.records)
    [record] = gate.records()
    assert (record["decision"], record["reason"]) == ("allow", "allowed")
    assert record["credential"] == "face" and record["holder_id"] == "H005"
    assert "card" not in record  # the void card is not what passed
    assert gate.gate.openings == ["in"]
    with gate.store.read() as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_a_stranger_is_told_and_nothing_is_journalled(gate: FaceGate) -> None:
    gate.camera.show_files([photo_path(PERSON_A[0])])  # nobody enrolled this face
    unknown = lambda: any(  # noqa: E731
        isinstance(t, FlowNotice) and t.notice is Notice.FACE_UNKNOWN for t in gate.told
    )
    gate.run_until(unknown)
    assert gate.records() == [] and gate.gate.openings == []


def test_card_plus_face_still_works_at_a_face_only_gate(gate: FaceGate) -> None:
    gate.camera.show_files([photo_path(PERSON_B[1])])
    present(gate.loop, presented(card_number(1)))
    # The watch may also have admitted H001 by face meanwhile; the card tap is its own record.
    by_card = [r for r in gate.records() if r["credential"] == "card+face"]
    assert [(r["decision"], r["holder_id"]) for r in by_card] == [("allow", "H001")]


def test_a_photo_that_fails_liveness_is_journalled_with_a_still(
    store: Store, onnx_encoder: Encoder
) -> None:
    rig = FaceGate(store, onnx_encoder, live=False)
    rig.camera.show_files([photo_path(PERSON_B[1])])
    rig.watch.start()
    try:
        rig.run_until(rig.records)
    finally:
        rig.watch.stop()
    [record] = rig.records()
    assert (record["decision"], record["reason"], record["credential"]) == (
        "deny", "face_not_live", "face",
    )  # fmt: skip
    assert rig.gate.openings == []
    with store.read() as conn:
        (kind,) = conn.execute("SELECT type FROM events").fetchone()
    assert kind == "face_spoof"
    assert len(rig.faces.stills()) == 1
