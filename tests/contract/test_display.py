"""The Display contract (tests/contract/display_contract.py) on the simulated display."""

from collections.abc import Iterator

import pytest

from drivers.interfaces import Display, Screen
from drivers.sim import SimDisplay
from tests.contract.display_contract import DisplayContract, DisplayHarness


class SimHarness:
    def __init__(self) -> None:
        self.sim = SimDisplay()
        self.display: Display = self.sim

    def shown(self) -> Screen | None:
        return self.sim.screens[-1] if self.sim.screens else None


class TestSimDisplay(DisplayContract):
    @pytest.fixture
    def harness(self) -> Iterator[DisplayHarness]:
        made = SimHarness()
        yield made
        made.display.close()
