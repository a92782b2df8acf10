"""The CardReader contract (tests/contract/card_reader_contract.py) on the PC/SC reader, through
pyscard, a real pcscd, vpcd and a card emulator process."""

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from drivers.pcsc import PcscCardReader
from models.cards import PresentedCard
from tests.contract.card_reader_contract import CardReaderContract, ReaderHarness


class PcscHarness:
    def __init__(self, reader: PcscCardReader, emulators: Any) -> None:
        self.reader = reader
        self._emulators = emulators
        self._card: subprocess.Popen[bytes] | None = None

    def ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.reader.health().ok:
            if time.monotonic() > deadline:
                pytest.fail(f"the PC/SC reader never got ready: {self.reader.health()}")
            time.sleep(0.05)

    def present(self, card: PresentedCard) -> None:
        # A genuine card of that number: diversified from the test master key like any other.
        self._card = self._emulators.card("--number", card.number)

    def remove(self) -> None:
        assert self._card is not None
        self._emulators.kill(self._card)
        self._card = None


class TestPcscReader(CardReaderContract):
    @pytest.fixture
    def harness(
        self, make_reader: Callable[..., PcscCardReader], emulators: Any
    ) -> Iterator[ReaderHarness]:
        made = PcscHarness(make_reader(), emulators)
        made.ready()
        yield made
