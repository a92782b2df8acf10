"""The Gate contract against SerialGate: the simulated board on the far end of a real pty.

The test functions are the shared contract's own (imported from ``test_gate``), so the assertions
cannot drift; pytest collects them here and they take this module's ``harness`` fixture.
"""

import time
from collections.abc import Iterator

import pytest

from devtools.simboard import PassageMode, SimBoard, SimBoardControl
from drivers.turnstile.board import SerialGate, SerialGateSettings
from tests.contract.test_gate import (
    test_an_unknown_mode_is_a_value_error,
    test_free_needs_no_opening,
    test_health,
    test_locked_refuses_every_opening_until_normal,
    test_one_opening_is_one_passage,
    test_open_then_nobody_passes_within_the_window,
    test_open_then_passage,
    test_waiting_without_opening_is_a_timeout,
)

__all__ = [
    "test_an_unknown_mode_is_a_value_error",
    "test_free_needs_no_opening",
    "test_health",
    "test_locked_refuses_every_opening_until_normal",
    "test_one_opening_is_one_passage",
    "test_open_then_nobody_passes_within_the_window",
    "test_open_then_passage",
    "test_waiting_without_opening_is_a_timeout",
]


class SerialGateHarness:
    """A started simulated board and a healthy SerialGate talking to it over a pty."""

    def __init__(self) -> None:
        self.control = SimBoardControl(passage_delay=0.05)
        self.board = SimBoard(self.control)
        self.board.start()
        self.gate = SerialGate(
            SerialGateSettings(
                driver="serial",
                port=self.board.path,
                ack_timeout_seconds=0.2,
                status_interval_seconds=0.1,
                silence_timeout_seconds=0.5,
                passage_grace_seconds=0.2,
            )
        )
        # The gate connects in the background; the contract starts from a board that answers.
        deadline = time.monotonic() + 5
        while not self.gate.health().ok:
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"serial gate never became healthy: {self.gate.health()}")
            time.sleep(0.02)

    def someone_passes(self, yes: bool) -> None:
        self.control.next_passage(PassageMode.PASSES if yes else PassageMode.NOBODY)

    def close(self) -> None:
        self.gate.close()
        self.board.close()


@pytest.fixture
def harness() -> Iterator[SerialGateHarness]:
    made = SerialGateHarness()
    yield made
    made.close()
