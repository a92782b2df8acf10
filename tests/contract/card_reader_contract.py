"""The CardReader contract: the same assertions for every reader, through a harness each.

A harness knows how to put a card in front of its reader and take it away. The simulated reader
runs it in tests/contract; the PC/SC reader runs it through pcscd, vpcd and a card emulator in
tests/integration/pcsc, so the flows can rely on it whatever hardware sits underneath.
"""

import time
from typing import Protocol

import pytest

from drivers.interfaces import CardPresented, CardReader, CardRemoved, ReaderEvent
from models.cards import PresentedCard
from models.errors import DriverError
from tests.contract.events import next_event_within
from tests.factories import presented


class ReaderHarness(Protocol):
    reader: CardReader

    def present(self, card: PresentedCard) -> None: ...

    def remove(self) -> None: ...


def next_real_event(reader: CardReader, timeout: float = 10) -> ReaderEvent:
    return next_event_within(reader.next_event, timeout, "reader")


class CardReaderContract:
    """Subclass as ``Test...`` with a ``harness`` fixture that yields a ready harness."""

    def test_idle_reader_returns_none_within_the_timeout(self, harness: ReaderHarness) -> None:
        started = time.monotonic()
        assert harness.reader.next_event(0.2) is None
        assert time.monotonic() - started < 2

    def test_one_presentation_is_one_tap_then_a_removal(self, harness: ReaderHarness) -> None:
        card = presented()
        harness.present(card)
        event = next_real_event(harness.reader)
        assert isinstance(event, CardPresented)
        assert isinstance(event.credential, PresentedCard)
        assert event.credential.number == card.number
        assert harness.reader.next_event(0.3) is None  # held: nothing more
        harness.remove()
        assert isinstance(next_real_event(harness.reader), CardRemoved)

    def test_health_reports_a_usable_reader(self, harness: ReaderHarness) -> None:
        health = harness.reader.health()
        assert health.ok
        assert health.state

    def test_closed_reader_raises_driver_error(self, harness: ReaderHarness) -> None:
        harness.reader.close()
        with pytest.raises(DriverError):
            harness.reader.next_event(0.1)
        assert not harness.reader.health().ok
