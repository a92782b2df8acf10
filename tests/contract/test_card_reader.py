"""The CardReader contract (tests/contract/card_reader_contract.py) on the simulated reader."""

from collections.abc import Iterator

import pytest

from drivers.sim import SimCardReader, SimReaderControl
from models.cards import PresentedCard
from tests.contract.card_reader_contract import CardReaderContract, ReaderHarness


class SimHarness:
    def __init__(self) -> None:
        self.control = SimReaderControl()
        self.reader = SimCardReader(self.control)

    def present(self, card: PresentedCard) -> None:
        self.control.present(card)

    def remove(self) -> None:
        self.control.remove()


class TestSimReader(CardReaderContract):
    @pytest.fixture
    def harness(self) -> Iterator[ReaderHarness]:
        made = SimHarness()
        yield made
        made.reader.close()
