"""The simulated gate's modes, as the demo and the door flow tests rely on them."""

import pytest

from drivers.interfaces import PassageOutcome
from drivers.sim import SimGate, SimGateControl
from models.errors import DriverError


@pytest.fixture
def control() -> SimGateControl:
    return SimGateControl(delay=0.01)


@pytest.fixture
def gate(control: SimGateControl) -> SimGate:
    return SimGate(control)


def test_the_mode_is_recorded_on_the_control(gate: SimGate, control: SimGateControl) -> None:
    assert control.mode == "normal"
    for mode in ("free", "locked", "normal"):
        gate.set_mode(mode)
        assert control.mode == mode


def test_locked_refuses_without_recording_an_opening(
    gate: SimGate, control: SimGateControl
) -> None:
    gate.set_mode("locked")
    with pytest.raises(DriverError, match="gate locked"):
        gate.open("in", 1.0)
    assert control.openings == []
    gate.set_mode("normal")
    gate.open("in", 1.0)
    assert control.openings == ["in"]
    assert gate.wait_passage(1.0) is PassageOutcome.PASSED


def test_free_opens_nothing_and_leaves_nothing_to_wait_for(
    gate: SimGate, control: SimGateControl
) -> None:
    gate.set_mode("free")
    control.fail_next_open = True  # nothing is sent in free mode, so nothing can fail
    gate.open("out", 1.0)
    assert control.openings == []
    assert gate.wait_passage(0.01) is PassageOutcome.TIMEOUT
    assert control.fail_next_open


def test_a_refused_mode_changes_nothing(gate: SimGate, control: SimGateControl) -> None:
    gate.set_mode("locked")
    control.refuse_next_mode = True
    with pytest.raises(DriverError, match="refused free"):
        gate.set_mode("free")
    assert control.mode == "locked"
    gate.set_mode("free")
    assert control.mode == "free"


def test_an_unknown_mode_is_a_value_error(gate: SimGate, control: SimGateControl) -> None:
    with pytest.raises(ValueError, match="'normal', 'free' or 'locked'"):
        gate.set_mode("evacuate")
    assert control.mode == "normal"
