"""Tap loops on simulated devices for flow tests: unthreaded, so a test drives every turn."""

from collections.abc import Callable
from datetime import timedelta

from drivers.interfaces import CardPresented, CardRemoved
from drivers.sim import (
    SimCardReader,
    SimDisplay,
    SimGate,
    SimGateControl,
    SimKeypad,
    SimKeypadControl,
    SimReaderControl,
)
from models.cards import CardCredential
from terminal.clock import SetClock
from terminal.faces.evidence import FaceUse
from terminal.faces.watch import FaceWatch
from terminal.flows.door import DoorFlow, DoorSettings
from terminal.flows.pos import PosFlow, PosSettings
from terminal.loop import TapLoop
from terminal.store import Store
from tests.factories import TZ


def door_loop(
    store: Store,
    settings: DoorSettings,
    clock: SetClock,
    *,
    gate: SimGateControl | None = None,
    reader: SimReaderControl | None = None,
    faces: FaceUse | None = None,
    watch: FaceWatch | None = None,
) -> TapLoop:
    flow = DoorFlow(settings=settings, store=store, face_checks=faces is not None)
    return TapLoop(
        flow,
        store=store,
        clock=clock,
        timezone=TZ,
        reader=SimCardReader(reader or SimReaderControl()),
        gate=SimGate(gate or SimGateControl(delay=0)),
        faces=faces,
        watch=watch,
        threaded=False,
    )


def pos_loop(
    store: Store,
    settings: PosSettings,
    clock: SetClock,
    *,
    reader: SimReaderControl,
    keys: SimKeypadControl,
    display: SimDisplay,
    faces: FaceUse | None = None,
    degraded: Callable[[], bool] = lambda: False,
) -> TapLoop:
    flow = PosFlow(settings=settings, store=store, degraded=degraded, face_pay=faces is not None)
    return TapLoop(
        flow,
        store=store,
        clock=clock,
        timezone=TZ,
        reader=SimCardReader(reader),
        keypad=SimKeypad(keys),
        display=display,
        faces=faces,
        threaded=False,
    )


def settle(loop: TapLoop, clock: SetClock, *, limit: int = 1000) -> None:
    """Turn until the flow is idle; when it only waits for a person who is not coming (a prompt
    nobody answers), move the clock to its deadline instead of waiting for it."""
    for _ in range(limit):
        loop.turn(0)
        loop.poll_devices()  # a key pressed at what the display just showed
        if loop.pending:
            continue
        if loop.flow.idle:
            return
        deadline = loop.flow.deadline()
        if deadline is None:
            raise AssertionError(f"flow {loop.flow.state} waits for nothing")
        clock.advance(timedelta(seconds=max(0.0, deadline - loop.now().mono) + 0.001))
    raise AssertionError(f"flow still {loop.flow.state} after {limit} turns")


def present(loop: TapLoop, credential: CardCredential, *, remove: bool = True) -> None:
    """A card presented (and taken away), handled to the end: decided, recorded, passed."""
    loop.post(CardPresented(credential))
    if remove:
        loop.post(CardRemoved())
    loop.run_until_idle()
