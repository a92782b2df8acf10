"""Waiting for a device's next event the way the tap loop asks for it, in short polls."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def next_event_within(next_event: Callable[[float], T | None], timeout: float, what: str) -> T:
    """The first event ``next_event`` gives within ``timeout`` seconds; fails the test otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = next_event(0.1)
        if event is not None:
            return event
    raise AssertionError(f"no {what} event within {timeout} s")
