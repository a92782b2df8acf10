from datetime import timedelta

import pytest

from drivers.interfaces import CardPresented, CardRemoved, PassageOutcome, TapIncomplete
from drivers.sim import SimGateControl, SimReaderControl
from models import Reason
from models.door import AntiPassback, PassageReport
from models.errors import StoreError
from terminal.clock import SetClock
from terminal.flows.door import DoorSettings, DoorState, FlowNotice, Notice, TapOutcome
from terminal.flows.steps import Commit, GateReported, OpenGate, Recorded, Tick
from terminal.store import Store
from tests.factories import MONDAY_9, presented
from tests.fixtures import DOOR, card_number, seed
from tests.loops import door_loop


class Harness:
    def __init__(self, store: Store, settings: DoorSettings | None = None) -> None:
        seed(store)
        self.store = store
        self.gate_control = SimGateControl(delay=0)
        self.reader_control = SimReaderControl()
        self.clock = SetClock(MONDAY_9)
        self.loop = door_loop(
            store,
            settings or DoorSettings(DOOR, "in", open_seconds=0.05),
            self.clock,
            gate=self.gate_control,
            reader=self.reader_control,
        )
        self.gate = self.loop.gate
        self.flow = self.loop.flow
        self.told: list[TapOutcome | FlowNotice] = []
        self.flow.listeners.append(self.told.append)

    def handle(self, event: object) -> None:
        self.loop.post(event)  # type: ignore[arg-type]
        self.loop.run_until_idle()

    def tap(self, n: int, **fields: object) -> None:
        self.handle(CardPresented(presented(card_number(n), **fields)))
        self.handle(CardRemoved())

    def kinds(self) -> list[tuple[str, str, str]]:
        return [(r["kind"], r["decision"], r["reason"]) for r in self.store.records()]


@pytest.fixture
def harness(store: Store) -> Harness:
    return Harness(store)


def test_allowed_tap_is_durable_before_the_gate_opens(harness: Harness) -> None:
    seen_at_open: list[int] = []
    original_open = harness.gate.open

    def open_and_check(direction: str | None, seconds: float) -> None:
        # Read through a second connection: only committed data is visible there.
        reader = Store.open(harness.store.path)
        seen_at_open.append(reader.counts()["journal"])
        reader.close()
        original_open(direction, seconds)

    harness.gate.open = open_and_check  # type: ignore[method-assign,union-attr]
    harness.tap(1)
    assert seen_at_open == [1]
    assert harness.kinds() == [
        ("door", "allow", "allowed"),
        ("passage", "allow", "passage_confirmed"),
    ]
    passage = harness.store.records()[1]
    assert passage["used"] is True
    assert passage["ref"] == harness.store.records()[0]["id"]
    assert harness.gate_control.openings == ["in"]


def test_denied_tap_is_recorded_and_the_gate_stays_shut(harness: Harness) -> None:
    harness.tap(5)  # the lost card
    assert harness.kinds() == [("door", "deny", "card_lost")]
    assert harness.gate_control.openings == []
    outcome = harness.told[0]
    assert isinstance(outcome, TapOutcome) and outcome.passage is None


def test_nobody_passing_is_recorded_as_not_used(harness: Harness) -> None:
    harness.gate_control.next_outcome(PassageOutcome.TIMEOUT)
    harness.tap(1)
    passage = harness.store.records()[1]
    assert (passage["reason"], passage["used"]) == ("passage_timeout", False)


def test_gate_failure_is_recorded(harness: Harness) -> None:
    harness.gate_control.fail_next_open = True
    harness.tap(1)
    passage = harness.store.records()[1]
    assert (passage["reason"], passage["used"]) == ("gate_fault", False)


def test_card_held_on_the_reader_does_not_retrigger(harness: Harness) -> None:
    event = CardPresented(presented(card_number(1)))
    harness.handle(event)
    harness.handle(event)  # a chatty reader reports the same card again
    harness.handle(event)
    assert len(harness.store.records()) == 2  # one door record + its passage
    assert [m.notice for m in harness.told if isinstance(m, FlowNotice)] == [Notice.HELD] * 2
    harness.handle(CardRemoved())
    harness.handle(event)
    assert len(harness.store.records()) == 4


def test_a_different_card_is_a_new_tap_even_without_removal(harness: Harness) -> None:
    harness.handle(CardPresented(presented(card_number(1))))
    harness.handle(CardPresented(presented(card_number(2))))
    assert [r["card"] for r in harness.store.records() if r["kind"] == "door"] == [
        card_number(1),
        card_number(2),
    ]


def test_torn_read_records_nothing_and_asks_to_tap_again(harness: Harness) -> None:
    harness.handle(TapIncomplete("card left during READ BINARY"))
    assert harness.store.records() == []
    assert isinstance(harness.told[0], FlowNotice)
    assert harness.told[0].notice is Notice.TAP_AGAIN
    harness.tap(1)
    assert harness.kinds()[0] == ("door", "allow", "allowed")


def test_store_failure_keeps_the_gate_shut(harness: Harness) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise StoreError("disk full")

    harness.store.commit = fail  # type: ignore[method-assign,assignment]
    harness.tap(1)
    assert harness.gate_control.openings == []
    assert isinstance(harness.told[0], FlowNotice)
    assert harness.told[0].notice is Notice.STORE_FAILED


def test_security_events_are_journalled(harness: Harness) -> None:
    harness.tap(7, issue_seq=1)  # replaced card
    with harness.store.read() as conn:
        assert conn.execute("SELECT type FROM events").fetchall() == [("replaced_card_used",)]


def test_reader_events_drive_the_flow(harness: Harness) -> None:
    harness.reader_control.tap(presented(card_number(2)))
    harness.loop.run_until_idle()
    assert harness.kinds()[0] == ("door", "allow", "allowed")
    assert Reason.ALLOWED in [m.decision.reason for m in harness.told if isinstance(m, TapOutcome)]


def test_gate_alarms_are_journalled_as_security_events(harness: Harness) -> None:
    harness.gate_control.alarm("door_forced")
    harness.loop.turn(0)
    with harness.store.read() as conn:
        rows = conn.execute("SELECT type, door, tx_seq FROM events").fetchall()
        queued = conn.execute("SELECT count(*) FROM outbox WHERE topic = 'event'").fetchone()[0]
    assert rows == [("door_forced", DOOR, None)]
    assert queued == 1
    assert [m.notice for m in harness.told if isinstance(m, FlowNotice)] == [Notice.ALARM]


def test_hard_anti_passback_through_the_store(store: Store) -> None:
    harness = Harness(store, DoorSettings(DOOR, "in", 0.05, AntiPassback("hard", 60)))
    harness.tap(1)  # admitted and passed
    harness.tap(1)  # in again without going out
    door = [(r["decision"], r["reason"]) for r in store.records() if r["kind"] == "door"]
    assert door == [("allow", "allowed"), ("deny", "anti_passback")]
    with store.read() as conn:
        assert conn.execute("SELECT type FROM events").fetchall() == [("anti_passback",)]


def test_unused_passage_does_not_count_for_anti_passback(store: Store) -> None:
    harness = Harness(store, DoorSettings(DOOR, "in", 0.05, AntiPassback("hard", 60)))
    harness.gate_control.next_outcome(PassageOutcome.TIMEOUT)
    harness.tap(1)  # admitted, but nobody went through
    harness.tap(1)
    door = [r["reason"] for r in store.records() if r["kind"] == "door"]
    assert door == ["allowed", "allowed"]


# --- the flow as a state machine: events in, commands out, time from the clock ----------------


def test_the_gate_is_asked_to_open_only_after_the_record_is_durable(harness: Harness) -> None:
    flow, now = harness.flow, harness.loop.now()
    [commit] = flow.step(CardPresented(presented(card_number(1))), now)
    assert isinstance(commit, Commit) and commit.draft.reason == "allowed"
    assert flow.state is DoorState.RECORDING
    committed = harness.store.commit(commit.draft, commit.event, commit.effects)
    commands = flow.step(Recorded(committed), now)
    [opening] = [c for c in commands if isinstance(c, OpenGate)]
    assert (opening.direction, flow.state) == ("in", DoorState.OPEN)
    [passage] = flow.step(GateReported(opening.ticket, PassageReport.PASSED), now)
    assert isinstance(passage, Commit) and passage.draft.ref == committed.id
    assert passage.draft.used is True


def test_a_gate_that_never_reports_is_recorded_as_a_fault_when_its_window_ends(
    harness: Harness,
) -> None:
    flow = harness.flow
    [commit] = flow.step(CardPresented(presented(card_number(1))), harness.loop.now())
    committed = harness.store.commit(commit.draft, commit.event, commit.effects)
    flow.step(Recorded(committed), harness.loop.now())
    assert flow.step(Tick(), harness.loop.now()) == []  # still within the open window
    harness.clock.advance(timedelta(seconds=6))
    [passage] = flow.step(Tick(), harness.loop.now())
    assert isinstance(passage, Commit) and passage.draft.reason == "gate_fault"


def test_taps_while_the_gate_is_open_wait_their_turn(harness: Harness) -> None:
    flow, now, store = harness.flow, harness.loop.now(), harness.store
    [commit] = flow.step(CardPresented(presented(card_number(1))), now)
    committed = store.commit(commit.draft, commit.event, commit.effects)
    [opening] = [c for c in flow.step(Recorded(committed), now) if isinstance(c, OpenGate)]
    assert flow.step(CardPresented(presented(card_number(2))), now) == []  # deferred
    assert flow.take_deferred() is None  # not while the gate is open
    [passage] = flow.step(GateReported(opening.ticket, PassageReport.PASSED), now)
    assert isinstance(passage, Commit)
    flow.step(Recorded(store.commit(passage.draft, passage.event, passage.effects)), now)
    assert flow.idle
    waiting = flow.take_deferred()
    assert isinstance(waiting, CardPresented) and waiting.credential.number == card_number(2)


def test_a_late_report_from_an_opening_the_flow_gave_up_on_is_ignored(harness: Harness) -> None:
    flow = harness.flow
    [commit] = flow.step(CardPresented(presented(card_number(1))), harness.loop.now())
    committed = harness.store.commit(commit.draft, commit.event, commit.effects)
    [opening] = [
        c for c in flow.step(Recorded(committed), harness.loop.now()) if isinstance(c, OpenGate)
    ]
    harness.clock.advance(timedelta(seconds=6))
    [fault] = flow.step(Tick(), harness.loop.now())
    assert isinstance(fault, Commit)
    flow.step(Recorded(harness.store.commit(fault.draft)), harness.loop.now())
    assert flow.step(GateReported(opening.ticket, PassageReport.PASSED), harness.loop.now()) == []


def test_taps_refused_on_a_full_disk_are_counted_until_a_write_succeeds(harness: Harness) -> None:
    store = harness.store
    with store.read() as conn:  # SQLite's own "database or disk is full", for real
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
    refused = 0
    for _ in range(300):
        harness.tap(1)
        harness.clock.advance(timedelta(minutes=5))  # a new person, not a duplicate tap
        refused = sum(
            isinstance(t, FlowNotice) and t.notice is Notice.STORE_FAILED for t in harness.told
        )
        if refused >= 2:
            break
    assert refused == 2 and store.failures == 2  # each refused tap is counted once
    assert "full" in store.last_failure and store.failing_since is not None
    with store.read() as conn:
        conn.execute(f"PRAGMA max_page_count = {pages * 100}")
    harness.clock.advance(timedelta(minutes=5))
    harness.tap(1)
    assert store.failures == 0 and store.failing_since is None  # recorded again: cleared
    assert harness.kinds()[-2:] == [
        ("door", "allow", "allowed"),
        ("passage", "allow", "passage_confirmed"),
    ]
