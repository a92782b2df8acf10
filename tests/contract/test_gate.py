"""The Gate contract, run against every implementation."""

import time
from collections.abc import Iterator

import pytest

from drivers.interfaces import Gate, PassageOutcome
from drivers.sim import SimGate, SimGateControl
from models.errors import DriverError


class SimGateHarness:
    def __init__(self) -> None:
        self.control = SimGateControl(delay=0.05)
        self.gate = SimGate(self.control)

    def someone_passes(self, yes: bool) -> None:
        self.control.next_outcome(PassageOutcome.PASSED if yes else PassageOutcome.TIMEOUT)


@pytest.fixture(params=["sim"])
def harness(request: pytest.FixtureRequest) -> Iterator[SimGateHarness]:
    made = SimGateHarness()
    yield made
    made.gate.close()


def test_open_then_passage(harness: SimGateHarness) -> None:
    gate: Gate = harness.gate
    harness.someone_passes(True)
    gate.open("in", 1.0)
    assert gate.wait_passage(1.0) is PassageOutcome.PASSED


def test_open_then_nobody_passes_within_the_window(harness: SimGateHarness) -> None:
    harness.someone_passes(False)
    harness.gate.open("in", 0.3)
    started = time.monotonic()
    assert harness.gate.wait_passage(0.3) is PassageOutcome.TIMEOUT
    assert time.monotonic() - started < 3


def test_waiting_without_opening_is_a_timeout(harness: SimGateHarness) -> None:
    assert harness.gate.wait_passage(0.1) is PassageOutcome.TIMEOUT


def test_one_opening_is_one_passage(harness: SimGateHarness) -> None:
    harness.gate.open("in", 1.0)
    assert harness.gate.wait_passage(1.0) is PassageOutcome.PASSED
    assert harness.gate.wait_passage(0.1) is PassageOutcome.TIMEOUT


def test_health(harness: SimGateHarness) -> None:
    assert harness.gate.health().ok


def test_locked_refuses_every_opening_until_normal(harness: SimGateHarness) -> None:
    gate: Gate = harness.gate
    gate.set_mode("locked")
    with pytest.raises(DriverError):
        gate.open("in", 1.0)
    assert gate.wait_passage(0.1) is PassageOutcome.TIMEOUT
    gate.set_mode("normal")
    harness.someone_passes(True)
    gate.open("in", 1.0)
    assert gate.wait_passage(1.0) is PassageOutcome.PASSED


def test_free_needs_no_opening(harness: SimGateHarness) -> None:
    gate: Gate = harness.gate
    gate.set_mode("free")
    started = time.monotonic()
    gate.open("in", 1.0)  # the gate stands released: returns at once
    assert gate.wait_passage(1.0) is PassageOutcome.TIMEOUT  # ...and there is no opening to use
    assert time.monotonic() - started < 0.5


def test_an_unknown_mode_is_a_value_error(harness: SimGateHarness) -> None:
    with pytest.raises(ValueError, match="mode"):
        harness.gate.set_mode("open")
