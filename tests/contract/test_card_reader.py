"""The CardReader contract, run against every implementation through a small harness each.

A harness knows how to put a card in front of its reader and take it away; the assertions are the
same for all readers, so the flows can rely on them whatever hardware sits underneath.
"""

import time
from collections.abc import Iterator
from typing import Protocol

import pytest

from drivers.interfaces import CardPresented, CardReader, CardRemoved, ReaderEvent
from drivers.sim import SimCardReader, SimReaderControl
from models.cards import PresentedCard
from models.errors import DriverError
from tests.factories import presented


class ReaderHarness(Protocol):
    reader: CardReader

    def present(self, card: PresentedCard) -> None: ...

    def remove(self) -> None: ...


class SimHarness:
    def __init__(self) -> None:
        self.control = SimReaderControl()
        self.reader = SimCardReader(self.control)

    def present(self, card: PresentedCard) -> None:
        self.control.present(card)

    def remove(self) -> None:
        self.control.remove()


@pytest.fixture(params=["sim"])
def harness(request: pytest.FixtureRequest) -> Iterator[ReaderHarness]:
    made = SimHarness()
    yield made
    made.reader.close()


def next_real_event(reader: CardReader, timeout: float = 10) -> ReaderEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = reader.next_event(0.2)
        if event is not None:
            return event
    raise AssertionError("no reader event")


def test_idle_reader_returns_none_within_the_timeout(harness: ReaderHarness) -> None:
    started = time.monotonic()
    assert harness.reader.next_event(0.2) is None
    assert time.monotonic() - started < 2


def test_one_presentation_is_one_tap_then_a_removal(harness: ReaderHarness) -> None:
    card = presented()
    harness.present(card)
    event = next_real_event(harness.reader)
    assert isinstance(event, CardPresented)
    assert isinstance(event.credential, PresentedCard)
    assert event.credential.number == card.number
    assert harness.reader.next_event(0.3) is None  # held: nothing more
    harness.remove()
    assert isinstance(next_real_event(harness.reader), CardRemoved)


def test_health_reports_a_usable_reader(harness: ReaderHarness) -> None:
    health = harness.reader.health()
    assert health.ok
    assert health.state


def test_closed_reader_raises_driver_error(harness: ReaderHarness) -> None:
    harness.reader.close()
    with pytest.raises(DriverError):
        harness.reader.next_event(0.1)
    assert not harness.reader.health().ok
