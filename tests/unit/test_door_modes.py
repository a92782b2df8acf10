"""Door modes ordered by HQ: lockdown refuses every tap, evacuation leaves the gate released,
and the mode outlives a restart. The HQ side of the commands is in
tests/integration/test_remote_commands.py."""

import json
from pathlib import Path

import pytest

from models import Reason
from models.errors import DriverError
from sync.engine import CommandRefused
from terminal.flows.door import MODE_STATE, DoorFlow, DoorMode, FlowNotice, Notice, TapOutcome
from terminal.remote import RemoteCommands
from terminal.store import Store
from tests.unit.test_door_flow import Harness


@pytest.fixture
def harness(store: Store) -> Harness:
    return Harness(store)


def outcomes(harness: Harness) -> list[TapOutcome]:
    return [t for t in harness.told if isinstance(t, TapOutcome)]


def test_lockdown_denies_taps_that_would_pass_and_keeps_other_reasons(harness: Harness) -> None:
    harness.flow.set_mode("locked", reason="intruder", by="hq")
    assert harness.gate_control.mode == "locked"
    harness.tap(1)  # would pass
    harness.tap(5)  # lost card: still a lost card, with its security event
    assert [(k, d, r) for k, d, r in harness.kinds()] == [
        ("door", "deny", "door_locked"),
        ("door", "deny", "card_lost"),
    ]
    assert harness.gate_control.openings == []
    assert harness.flow.remote_open("test", "hq") is None
    assert any(isinstance(t, FlowNotice) and t.notice is Notice.MODE for t in harness.told)


def test_evacuation_records_taps_without_operating_the_gate(harness: Harness) -> None:
    harness.flow.set_mode("free", reason="fire alarm", by="hq")
    harness.tap(1)
    [outcome] = outcomes(harness)
    assert outcome.decision.allowed and outcome.passage is None
    assert outcome.passage_reason is Reason.FREE_PASSAGE
    assert harness.kinds() == [("door", "allow", "allowed")]  # no passage record: none was seen
    assert harness.gate_control.openings == []


def test_the_mode_and_who_ordered_it_are_recorded_and_outlive_a_restart(
    harness: Harness, store: Store
) -> None:
    harness.flow.set_mode("locked", reason="intruder", by="hq")
    assert store.state(MODE_STATE) == "locked"
    with store.read() as conn:
        (detail,) = conn.execute("SELECT detail FROM events WHERE type = 'door_mode'").fetchone()
    assert json.loads(detail) == {"mode": "locked", "reason": "intruder", "by": "hq"}
    flow = DoorFlow(
        settings=harness.flow.settings,
        reader=harness.flow.reader,
        gate=harness.flow.gate,
        store=store,
        clock=harness.flow.clock,
        timezone=harness.flow.timezone,
    )
    harness.gate_control.mode = "normal"  # the board lost it in a power cut
    flow.restore_mode()
    assert flow.mode is DoorMode.LOCKED and harness.gate_control.mode == "locked"


def test_a_mode_the_board_refuses_changes_nothing(harness: Harness, store: Store) -> None:
    def refuse(mode: str) -> None:
        raise DriverError("board refused: tamper active")

    harness.gate.set_mode = refuse  # type: ignore[method-assign]
    with pytest.raises(DriverError):
        harness.flow.set_mode("free", reason="", by="hq")
    assert harness.flow.mode is DoorMode.NORMAL and store.state(MODE_STATE) is None
    with pytest.raises(ValueError):
        harness.flow.set_mode("party", reason="", by="hq")


def test_remote_commands_refuse_what_this_terminal_cannot_do(tmp_path: Path) -> None:
    pos = RemoteCommands(door_flow=None)
    for name, args in (("open", {}), ("set_mode", {"mode": "free"})):
        with pytest.raises(CommandRefused, match="controls no door"):
            pos.handle(name, args)
    with pytest.raises(CommandRefused, match="not started from a file"):
        pos.handle("reload_config", {})
    with pytest.raises(CommandRefused, match="not available"):
        pos.handle("diag_bundle", {})
    missing = RemoteCommands(door_flow=None, config_path=tmp_path / "gone.toml")
    with pytest.raises(CommandRefused, match="no such file"):
        missing.handle("reload_config", {})
