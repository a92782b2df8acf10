"""A presentation run through the real flow and ``decide()``, with a loop that writes nothing.

``ykt diag card`` hands the tapped card (or a card number) to a fresh flow of the same kind,
settings and door mode as the daemon's, and carries out its commands here, on diag's thread:
a commit is kept instead of written (the flow is told it is durable, so it goes on exactly as it
would), a face check runs for real on the camera, and the gate is not opened — the dry run stops
where the real one would release it. A prompt (PIN, confirmation) ends it too: nobody is there to
answer. What the flow decided, what it would have journalled and the facts the rules weighed come
back for the technician.
"""

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any

from drivers.interfaces import AmountEntered, CardPresented, Screen
from drivers.qr.interface import QrPresented
from models.cards import CardFault, Credential, FaceCredential, PresentedCard
from models.correction import CorrectionRequest, CorrectionView
from models.decision import Decision
from models.door import DoorRequest, DoorView
from models.errors import DriverError
from models.explain import explain_correction, explain_door, explain_pos
from models.journal import TransactionDraft
from models.pos import PosRequest, PosView
from terminal.clock import Clock
from terminal.faces.evidence import FaceUse
from terminal.faces.verifier import FaceOutcome, FaceResult
from terminal.faces.watch import FaceSeen
from terminal.flows.door import DoorFlow
from terminal.flows.pos import PosFlow
from terminal.flows.steps import (
    Command,
    Commit,
    FaceChecked,
    FlowEvent,
    IdentifyFace,
    Moment,
    OpenGate,
    Recorded,
    Show,
    VerifyFace,
)
from terminal.store import Committed, SecurityEvent

NOT_WRITTEN = Committed(seq=0, id="dry-run", hash="")


@dataclass
class DryRun:
    """What a presentation would have done."""

    decision: Decision | None = None
    credential: Credential | None = None  # as judged: a code's is what its verification made
    facts: list[str] = field(default_factory=list)
    records: list[TransactionDraft] = field(default_factory=list)
    events: list[SecurityEvent] = field(default_factory=list)
    screens: list[Screen] = field(default_factory=list)
    gate: str | None = None  # "open": the real run would release the gate here
    face: FaceResult | None = None
    view_seq: int | None = None
    registry: dict[str, Any] = field(default_factory=dict)


def _copy(flow: DoorFlow | PosFlow) -> DoorFlow | PosFlow:
    """A fresh flow judging as the daemon's does now (same settings, same door mode)."""
    if isinstance(flow, DoorFlow):
        copy = DoorFlow(settings=flow.settings, store=flow.store, face_checks=flow.face_checks)
        copy.mode = flow.mode
        return copy
    return PosFlow(
        settings=flow.settings,
        store=flow.store,
        degraded=flow.degraded,
        face_pay=flow.face_pay,
        pin_key=flow.pin_key,
    )


class DryRunner:
    def __init__(
        self, flow: DoorFlow | PosFlow, *, clock: Clock, timezone: tzinfo, faces: FaceUse | None
    ) -> None:
        self.flow = flow
        self.clock = clock
        self.timezone = timezone
        self.faces = faces

    def _now(self) -> Moment:
        return Moment(self.clock.now().astimezone(self.timezone), self.clock.monotonic_ns() / 1e9)

    def run(self, presented: Credential | QrPresented, amount: int | None = None) -> DryRun:
        """``presented``: a card or face credential, or a code's text as a reader hands it over
        (verified here as the flow verifies a real one: keys, time, whether already used)."""
        flow = _copy(self.flow)
        result = DryRun()
        events: list[FlowEvent] = []
        if amount is not None and isinstance(flow, PosFlow):
            events.append(AmountEntered(amount))
        if isinstance(presented, QrPresented):
            events.append(presented)
        elif isinstance(presented, FaceCredential):
            events.append(FaceSeen(presented))
        elif isinstance(presented, PresentedCard | CardFault):
            events.append(CardPresented(presented))
        else:
            raise TypeError("a code is dry-run as its text (QrPresented), to be verified as shown")
        for event in events:
            self._feed(flow, event, result)
        judged = flow.last
        if judged is not None:
            result.decision = judged.decision
            result.credential = getattr(judged.request, "credential", None)
            result.facts = _explain(judged.request, judged.view, judged.at)
            view = judged.view
            result.view_seq = None if view is None else view.view_seq
            result.registry = _registry(view)
        return result

    def _feed(self, flow: DoorFlow | PosFlow, event: FlowEvent, result: DryRun) -> None:
        pending = [event]
        while pending:
            commands = flow.step(pending.pop(0), self._now())
            pending += self._execute(commands, result)

    def _execute(self, commands: list[Command], result: DryRun) -> list[FlowEvent]:
        follow: list[FlowEvent] = []
        for command in commands:
            if isinstance(command, Commit):
                result.records.append(command.draft)
                if command.event is not None:
                    result.events.append(command.event)
                follow.append(Recorded(NOT_WRITTEN))
            elif isinstance(command, OpenGate):
                result.gate = "open"  # where the real run releases the gate: stop here
            elif isinstance(command, VerifyFace | IdentifyFace):
                result.face = self._face(command)
                follow.append(FaceChecked(command.ticket, result.face))
            elif isinstance(command, Show):
                result.screens.append(command.screen)
        return follow

    def _face(self, command: VerifyFace | IdentifyFace) -> FaceResult:
        if self.faces is None:
            return FaceResult(FaceOutcome.CAMERA_FAULT)
        try:
            if isinstance(command, VerifyFace):
                return self.faces.verifier.verify(command.holder_id, command.seconds)
            return self.faces.verifier.identify(command.seconds)
        except DriverError:
            return FaceResult(FaceOutcome.CAMERA_FAULT)


def _explain(request: object, view: object, at: Any) -> list[str]:
    if isinstance(request, DoorRequest) and isinstance(view, DoorView):
        return explain_door(request, view, at)
    if isinstance(request, PosRequest) and isinstance(view, PosView):
        return explain_pos(request, view, at)
    if isinstance(request, CorrectionRequest) and isinstance(view, CorrectionView):
        return explain_correction(request, view)
    return []


def _registry(view: object) -> dict[str, Any]:
    card = getattr(view, "card", None)
    holder = getattr(view, "holder", None)
    return {
        "card_status": None if card is None else str(card.status),
        "card_class": None if card is None else card.card_class,
        "issue_seq": None if card is None else card.issue_seq,
        "holder_id": None if holder is None else holder.id,
        "holder_name": None if holder is None else holder.name,
        "holder_status": None if holder is None else str(holder.status),
    }
