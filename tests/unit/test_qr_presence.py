"""Sightings to presentations (drivers/qr/presence.py), on a clock the test moves."""

import threading
import time

import pytest

from drivers.qr.interface import QrPresented, QrRemoved
from drivers.qr.presence import Presence
from models.errors import DriverError


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drain(presence: Presence) -> list[object]:
    events = []
    while (event := presence.next_event(0)) is not None:
        events.append(event)
    return events


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_repeated_sightings_within_gone_are_one_presentation(clock: Clock) -> None:
    presence = Presence("serial", 0.6, clock)
    assert presence.seen("A")
    for _ in range(10):
        clock.now += 0.5  # each within 0.6 s of the last: still the same showing
        assert not presence.seen("A")
    assert drain(presence) == [QrPresented("A", "serial")]
    clock.now += 0.59
    assert drain(presence) == []
    clock.now += 0.01
    assert drain(presence) == [QrRemoved()]
    assert presence.seen("A")  # after the removal: a new presentation
    assert drain(presence) == [QrPresented("A", "serial")]


def test_a_different_code_removes_the_one_in_view_first(clock: Clock) -> None:
    presence = Presence("camera", 0.6, clock)
    presence.seen("A")
    presence.seen("B")
    assert drain(presence) == [
        QrPresented("A", "camera"),
        QrRemoved(),
        QrPresented("B", "camera"),
    ]


def test_a_sighting_after_the_gap_is_new_even_without_anyone_asking(clock: Clock) -> None:
    presence = Presence("camera", 0.6, clock)
    presence.seen("A")
    clock.now += 1.0
    assert presence.seen("A")
    assert drain(presence) == [QrPresented("A", "camera"), QrRemoved(), QrPresented("A", "camera")]


def test_a_sighting_time_from_the_frame_counts(clock: Clock) -> None:
    presence = Presence("camera", 0.6, clock)
    presence.seen("A", at=clock.now)
    clock.now += 0.5
    presence.seen("A", at=clock.now - 0.4)  # a frame captured 0.4 s ago: last seen then
    clock.now += 0.25
    assert drain(presence)[-1] == QrRemoved()


def test_withdraw_and_source_override(clock: Clock) -> None:
    presence = Presence("sim", float("inf"), clock)
    presence.withdraw()  # nothing in view: nothing happens
    presence.seen("A", source="camera")
    clock.now += 1e9
    assert drain(presence) == [QrPresented("A", "camera")]
    presence.withdraw()
    assert drain(presence) == [QrRemoved()]


def test_next_event_wakes_for_the_removal_on_the_real_clock() -> None:
    presence = Presence("serial", 0.2)
    presence.seen("A")
    assert presence.next_event(1) == QrPresented("A", "serial")
    started = time.monotonic()
    assert presence.next_event(5) == QrRemoved()
    assert time.monotonic() - started < 2  # woken by the deadline, not by the 5 s timeout


def test_next_event_wakes_for_a_sighting_from_another_thread() -> None:
    presence = Presence("serial", 1.0)
    threading.Timer(0.1, presence.seen, args=("A",)).start()
    assert presence.next_event(5) == QrPresented("A", "serial")


def test_events_nobody_takes_are_bounded(clock: Clock) -> None:
    presence = Presence("camera", 0.6, clock)
    for i in range(1000):
        presence.seen(f"code {i}")
    assert len(drain(presence)) == 64


def test_closed(clock: Clock) -> None:
    presence = Presence("camera", 0.6, clock)
    presence.seen("A")
    presence.close()
    assert presence.closed
    assert not presence.seen("B")
    with pytest.raises(DriverError):
        presence.next_event(0)
