"""Door modes ordered by HQ: lockdown refuses every tap, evacuation leaves the gate released,
and the mode outlives a restart. The HQ side of the commands is in
tests/integration/test_remote_commands.py."""

import json
from concurrent.futures import Future
from pathlib import Path

import pytest

from models import Reason
from models.errors import DriverError
from sync.engine import CommandRefused
from terminal.door_mode import DoorModes
from terminal.flows.door import MODE_STATE, DoorFlow, DoorMode, FlowNotice, Notice, TapOutcome
from terminal.flows.steps import RemoteOpenOrdered
from terminal.remote import RemoteCommands
from terminal.store import Store
from tests.unit.test_door_flow import Harness


class ModeHarness(Harness):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        assert self.gate is not None
        self.modes = DoorModes(self.flow, self.gate, store, self.clock)  # type: ignore[arg-type]

    def remote_open(self, reason: str) -> "Future[object]":
        reply: Future[object] = Future()
        self.handle(RemoteOpenOrdered(reason, "hq", reply))  # type: ignore[arg-type]
        return reply


@pytest.fixture
def harness(store: Store) -> ModeHarness:
    return ModeHarness(store)


def outcomes(harness: ModeHarness) -> list[TapOutcome]:
    return [t for t in harness.told if isinstance(t, TapOutcome)]


def test_lockdown_denies_taps_that_would_pass_and_keeps_other_reasons(harness: ModeHarness) -> None:
    harness.modes.set("locked", reason="intruder", by="hq")
    assert harness.gate_control.mode == "locked"
    harness.tap(1)  # would pass
    harness.tap(5)  # lost card: still a lost card, with its security event
    refused = harness.remote_open("test")
    assert [(k, d, r) for k, d, r in harness.kinds()] == [
        ("door", "deny", "door_locked"),
        ("door", "deny", "card_lost"),
        ("door", "deny", "door_locked"),  # HQ's open, refused and recorded like a tap
    ]
    assert harness.store.records()[-1]["credential"] == "remote"
    assert harness.gate_control.openings == []
    with pytest.raises(CommandRefused, match="locked down"):
        refused.result(0)
    assert any(isinstance(t, FlowNotice) and t.notice is Notice.MODE for t in harness.told)


def test_evacuation_records_taps_without_operating_the_gate(harness: ModeHarness) -> None:
    harness.modes.set("free", reason="fire alarm", by="hq")
    harness.tap(1)
    [outcome] = outcomes(harness)
    assert outcome.decision.allowed and outcome.passage is None
    assert outcome.passage_reason is Reason.FREE_PASSAGE
    assert harness.kinds() == [("door", "allow", "allowed")]  # no passage record: none was seen
    assert harness.gate_control.openings == []


def test_the_mode_and_who_ordered_it_are_recorded_and_outlive_a_restart(
    harness: ModeHarness, store: Store
) -> None:
    harness.modes.set("locked", reason="intruder", by="hq")
    assert store.state(MODE_STATE) == "locked"
    with store.read() as conn:
        (detail,) = conn.execute("SELECT detail FROM events WHERE type = 'door_mode'").fetchone()
    assert json.loads(detail) == {"mode": "locked", "reason": "intruder", "by": "hq"}
    flow = DoorFlow(settings=harness.flow.settings, store=store)  # type: ignore[arg-type]
    harness.gate_control.mode = "normal"  # the board lost it in a power cut
    DoorModes(flow, harness.modes.gate, store, harness.clock).restore()
    assert flow.mode is DoorMode.LOCKED and harness.gate_control.mode == "locked"


def test_a_mode_the_board_refuses_changes_nothing(harness: ModeHarness, store: Store) -> None:
    def refuse(mode: str) -> None:
        raise DriverError("board refused: tamper active")

    harness.modes.gate.set_mode = refuse  # type: ignore[method-assign]
    with pytest.raises(DriverError):
        harness.modes.set("free", reason="", by="hq")
    assert harness.flow.mode is DoorMode.NORMAL and store.state(MODE_STATE) is None
    with pytest.raises(ValueError):
        harness.modes.set("party", reason="", by="hq")


def test_a_remote_open_is_recorded_then_opens_and_replies_with_its_record(
    harness: ModeHarness,
) -> None:
    reply = harness.remote_open("fire drill")
    door, passage = harness.store.records()
    assert (door["reason"], door["credential"], door["authorised_by"]) == (
        "remote_open", "remote", "hq",
    )  # fmt: skip
    assert passage["reason"] == "passage_confirmed" and passage["ref"] == door["id"]
    assert reply.result(0) == {"opened": True, "seq": door["seq"]}
    assert harness.gate_control.openings == ["in"]
    with harness.store.read() as conn:
        (detail,) = conn.execute("SELECT detail FROM events WHERE type = 'remote_open'").fetchone()
    assert json.loads(detail)["by"] == "hq" and json.loads(detail)["reason"] == "fire drill"


def test_remote_commands_refuse_what_this_terminal_cannot_do(tmp_path: Path) -> None:
    pos = RemoteCommands(door=None)
    for name, args in (("open", {}), ("set_mode", {"mode": "free"})):
        with pytest.raises(CommandRefused, match="controls no door"):
            pos.handle(name, args)
    with pytest.raises(CommandRefused, match="not started from a file"):
        pos.handle("reload_config", {})
    with pytest.raises(CommandRefused, match="not available"):
        pos.handle("diag_bundle", {})
    missing = RemoteCommands(door=None, config_path=tmp_path / "gone.toml")
    with pytest.raises(CommandRefused, match="no such file"):
        missing.handle("reload_config", {})
