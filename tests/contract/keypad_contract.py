"""The Keypad contract: what the tap loop may rely on, whichever keys the cashier presses.

What every implementation of :class:`drivers.interfaces.Keypad` promises:

- ``next_event(timeout)`` gives each key event once, in the order the keys were pressed, as the
  interface's own event types (:data:`drivers.interfaces.KeypadEvent`) with the values pressed;
  a PIN never shows in an event's ``repr``;
- with nothing pressed it returns ``None``: at once for ``timeout=0`` (the loop polls the keys
  with 0 between reader waits) and within the timeout otherwise; a key pressed during a wait ends
  the wait with that key;
- ``close`` ends it: ``next_event`` then raises :class:`~models.errors.DriverError`, as a closed
  card reader does (the loop's input pump catches it), and a second ``close`` is harmless.

Run on :class:`drivers.sim.SimKeypad` in tests/contract/test_keypad.py. A new keypad (the kiosk
driver) subclasses :class:`KeypadContract` with a ``harness`` fixture whose ``press`` makes its
device produce the event (a touch on the kiosk's page, a key on a serial keypad).
"""

import threading
import time
import typing
from typing import Protocol

import pytest

from drivers.interfaces import (
    AmountEntered,
    Cancelled,
    Confirmed,
    CorrectionRequested,
    FacePayRequested,
    Keypad,
    KeypadEvent,
    PinEntered,
)
from models.errors import DriverError
from tests.contract.events import next_event_within

SLACK = 0.5  # what a return "within the timeout" may overrun on a busy two-CPU machine

# One of each event type, with values a till really sends.
EVERY_EVENT: tuple[KeypadEvent, ...] = (
    AmountEntered(1250),
    PinEntered("482916"),
    Confirmed(),
    Cancelled(),
    CorrectionRequested("last", 500),
    CorrectionRequested("0192f0a4-7c1e-7d3a-9b1e-3f6a2c9d8e71", 1),
    FacePayRequested(),
)


class KeypadHarness(Protocol):
    keypad: Keypad

    def press(self, event: KeypadEvent) -> None:
        """Make the device produce ``event``, as a person at the till would."""
        ...


def wait_event(keypad: Keypad, timeout: float = 5.0) -> KeypadEvent:
    return next_event_within(keypad.next_event, timeout, "keypad")


class KeypadContract:
    """Subclass as ``Test...`` with a ``harness`` fixture that yields a ready harness; the
    harness closes its keypad at teardown (closing twice is part of the contract)."""

    def test_idle_keypad_returns_none_at_once_with_no_timeout(self, harness: KeypadHarness) -> None:
        started = time.monotonic()
        for _ in range(10):
            assert harness.keypad.next_event(0) is None
        assert time.monotonic() - started < 0.2

    def test_idle_keypad_returns_none_within_the_timeout(self, harness: KeypadHarness) -> None:
        for timeout in (0.05, 0.3):
            started = time.monotonic()
            assert harness.keypad.next_event(timeout) is None
            assert time.monotonic() - started < timeout + SLACK

    def test_every_event_type_comes_out_as_pressed(self, harness: KeypadHarness) -> None:
        for pressed in EVERY_EVENT:
            harness.press(pressed)
            got = wait_event(harness.keypad)
            assert type(got) is type(pressed)
            assert got == pressed
        assert harness.keypad.next_event(0.1) is None

    def test_the_contract_covers_every_event_type(self) -> None:
        # A new event type in drivers/interfaces.py must be added to EVERY_EVENT above.
        assert {type(e) for e in EVERY_EVENT} == set(typing.get_args(KeypadEvent))

    def test_keys_come_once_in_the_order_pressed(self, harness: KeypadHarness) -> None:
        pressed: list[KeypadEvent] = [
            AmountEntered(800),
            Cancelled(),
            AmountEntered(1200),
            Confirmed(),
        ]
        for event in pressed:
            harness.press(event)
        got = [wait_event(harness.keypad) for _ in pressed]
        assert got == pressed
        assert harness.keypad.next_event(0) is None
        assert harness.keypad.next_event(0.2) is None

    def test_a_key_waiting_is_taken_with_no_timeout(self, harness: KeypadHarness) -> None:
        harness.press(AmountEntered(350))
        deadline = time.monotonic() + 5
        event = None
        while event is None and time.monotonic() < deadline:
            event = harness.keypad.next_event(0)  # how the loop takes keys: it never waits on them
        assert event == AmountEntered(350)

    def test_a_key_pressed_during_a_wait_ends_it(self, harness: KeypadHarness) -> None:
        timer = threading.Timer(0.2, harness.press, args=(Confirmed(),))
        timer.start()
        try:
            started = time.monotonic()
            event = harness.keypad.next_event(5.0)
            took = time.monotonic() - started
        finally:
            timer.cancel()
        assert event == Confirmed()
        assert took < 2.0

    def test_a_pin_never_shows_in_its_event(self, harness: KeypadHarness) -> None:
        harness.press(PinEntered("739104"))
        event = wait_event(harness.keypad)
        assert isinstance(event, PinEntered) and event.pin == "739104"
        assert "739104" not in repr(event) and "739104" not in str(event)

    def test_closed_keypad_raises_driver_error(self, harness: KeypadHarness) -> None:
        harness.keypad.close()
        with pytest.raises(DriverError):
            harness.keypad.next_event(0)
        with pytest.raises(DriverError):
            harness.keypad.next_event(0.1)
        harness.keypad.close()  # twice: harmless
