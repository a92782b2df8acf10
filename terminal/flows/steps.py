"""What flows take and give: events in, commands out (``step(event, now) -> commands``).

A flow never waits and never touches a device or writes the store. It reads views and asks
``decide()``; everything else is a command the tap loop (terminal/loop.py) carries out. What a
command leads to comes back as an event: a commit as :class:`Recorded` or :class:`NotRecorded`
within the same turn (so nothing is actuated before the record is durable), a gate opening or a
face check as :class:`GateReported` / :class:`FaceChecked` later, from a worker thread. Deadlines
(a PIN prompt, the gate's open window) are checked on :class:`Tick` against ``now.mono``, the
injected clock's monotonic time, so tests move time by moving the clock.
"""

from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from drivers.camera.interface import Frame
from drivers.interfaces import KeypadEvent, ReaderEvent, Screen
from drivers.qr.interface import QrEvent
from models.decide import Request, View
from models.decision import Decision
from models.door import PassageReport
from models.journal import TransactionDraft
from terminal.faces.verifier import FaceResult
from terminal.faces.watch import WatchEvent
from terminal.store import Committed, Effect, SecurityEvent


@dataclass(frozen=True, slots=True)
class Moment:
    """When an event is handled: site-local wall time (for rules and records) and monotonic
    seconds (for deadlines; a wall clock set back or forward does not move them)."""

    local: datetime
    mono: float


# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """Nothing happened; deadlines may have passed."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """The commit just asked for is durable."""

    committed: Committed


@dataclass(frozen=True, slots=True)
class NotRecorded:
    """The commit just asked for failed (disk full, I/O error): nothing happened."""

    error: str


@dataclass(frozen=True, slots=True)
class GateReported:
    """The gate opened for ``ticket`` reported (or failed)."""

    ticket: int
    report: PassageReport
    detail: str = ""


@dataclass(frozen=True, slots=True)
class FaceChecked:
    """The face check asked for with ``ticket`` is done."""

    ticket: int
    result: FaceResult


@dataclass(frozen=True, slots=True)
class RemoteOpenOrdered:
    """HQ's ``open``: the reply is completed once the decision is recorded."""

    reason: str
    by: str
    reply: "Future[Mapping[str, Any]] | None" = field(default=None, compare=False)


FlowEvent = (
    ReaderEvent
    | QrEvent
    | KeypadEvent
    | WatchEvent
    | Tick
    | Recorded
    | NotRecorded
    | GateReported
    | FaceChecked
    | RemoteOpenOrdered
)


# --- commands -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Commit:
    """Journal ``draft`` with its security event and effects, in one durable transaction."""

    draft: TransactionDraft
    event: SecurityEvent | None = None
    effects: tuple[Effect, ...] = ()


@dataclass(frozen=True, slots=True)
class OpenGate:
    ticket: int
    direction: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class VerifyFace:
    """Card + face: is the person at the camera ``holder_id``?"""

    ticket: int
    holder_id: str
    seconds: float


@dataclass(frozen=True, slots=True)
class IdentifyFace:
    """Face pay: who is at the camera?"""

    ticket: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Show:
    screen: Screen


@dataclass(frozen=True, slots=True)
class Tell:
    """For the flow's listeners (diag's activity, the demo's narration, tests)."""

    message: object


@dataclass(frozen=True, slots=True)
class KeepStill:
    """Keep ``frame`` as the evidence still of security event ``kind`` (journal ``tx_seq``)."""

    frame: Frame = field(repr=False)
    kind: str
    holder_id: str | None
    tx_seq: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Reply:
    """Complete a caller's future (HQ's remote open) with a result or a refusal."""

    future: "Future[Mapping[str, Any]]" = field(compare=False)
    result: Mapping[str, Any] | None = None
    refusal: str | None = None


Command = Commit | OpenGate | VerifyFace | IdentifyFace | Show | Tell | KeepStill | Reply


@dataclass(frozen=True, slots=True)
class Judged:
    """The flow's latest call of ``decide()``: what was asked, on what view, with what answer
    (diag's dry run explains a decision from it)."""

    request: Request
    view: View | None
    decision: Decision
    at: datetime


@dataclass(slots=True)
class Deferred:
    """Presentations that arrive while a flow is busy with one, handled in order afterwards
    (as they used to wait in the reader's queue), at most ``limit`` of them."""

    limit: int = 32
    events: list[FlowEvent] = field(default_factory=list)

    def add(self, event: FlowEvent) -> bool:
        if len(self.events) >= self.limit:
            return False
        self.events.append(event)
        return True

    def take(self) -> FlowEvent | None:
        return self.events.pop(0) if self.events else None
