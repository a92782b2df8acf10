"""The Keypad contract (tests/contract/keypad_contract.py) on the simulated keypad."""

from collections.abc import Iterator

import pytest

from drivers.interfaces import Keypad, KeypadEvent
from drivers.sim import SimKeypad, SimKeypadControl
from tests.contract.keypad_contract import KeypadContract, KeypadHarness


class SimHarness:
    def __init__(self) -> None:
        self.control = SimKeypadControl()
        self.keypad: Keypad = SimKeypad(self.control)

    def press(self, event: KeypadEvent) -> None:
        self.control.press(event)


class TestSimKeypad(KeypadContract):
    @pytest.fixture
    def harness(self) -> Iterator[KeypadHarness]:
        made = SimHarness()
        yield made
        made.keypad.close()
