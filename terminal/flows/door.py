"""The door flow: tap -> [face] -> decide -> durable commit -> open -> passage recorded.

A state machine (``step(event, now) -> commands``): it decides through ``models.decide()`` and
asks the tap loop for everything else. The order is the point: the gate is opened only once the
loop reports the decision durable (:class:`~terminal.flows.steps.Recorded`), and whatever the
turnstile then reports (someone passed, nobody did, the board failed, or it never answered within
the open window) is recorded too. While one presentation is in progress (face check, gate open)
others wait their turn, in order.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from drivers.camera.interface import Frame
from drivers.interfaces import CardPresented, CardRemoved, PassageOutcome, TapIncomplete
from drivers.qr.interface import QrPresented, QrRemoved
from models.cards import Credential, FaceCredential, held_key, mask_card_number
from models.credential import SiteCards
from models.decide import decide
from models.decision import Decision, GateAction, Need
from models.door import (
    AntiPassback,
    DoorMode,
    DoorRequest,
    DoorView,
    FacePolicy,
    PassageReport,
    PassageRequest,
    RemoteOpenRequest,
)
from models.face import FaceEvidence, FaceOutcome
from models.qr import DEFAULT_SKEW_S, QrCredential
from models.reasons import Reason
from terminal.faces.verifier import FaceResult
from terminal.faces.watch import FaceGone, FaceNotRecognised, FaceSeen, FaceSpoofed
from terminal.flows import qr, record
from terminal.flows.steps import (
    Command,
    Deferred,
    FaceChecked,
    FlowEvent,
    GateReported,
    Judged,
    KeepStill,
    Moment,
    NotRecorded,
    OpenGate,
    Recorded,
    RemoteOpenOrdered,
    Reply,
    Tell,
    Tick,
    VerifyFace,
)
from terminal.store import Committed, Store

logger = logging.getLogger(__name__)

__all__ = ["DoorFlow", "DoorMode", "DoorSettings", "FlowNotice", "Notice", "TapOutcome"]

MODE_STATE = "door_mode"
# How long past its own time a face check or an opened gate may stay silent before the flow stops
# waiting for it (the worker is stuck: a hung camera or board).
GRACE_SECONDS = 5.0


class DoorState(StrEnum):
    IDLE = "idle"
    FACE = "face"  # card + face: waiting for the 1:1 check
    RECORDING = "recording"  # a commit was asked for (answered within the same turn)
    OPEN = "open"  # released: waiting for the turnstile's report


class Notice(StrEnum):
    """Things a person at the reader should be told that are not decisions."""

    HELD = "held"  # the same card is still on the reader: ignored, not charged twice
    TAP_AGAIN = "tap_again"  # the card left mid-read: nothing recorded
    STORE_FAILED = "store_failed"  # the decision could not be recorded, so the gate stays shut
    ALARM = "alarm"  # the gate board reported door forced, held open or tamper
    FACE_UNKNOWN = "face_unknown"  # a face at the camera, but nobody to admit by face
    MODE = "mode"  # the door mode changed (detail: the new mode)


@dataclass(frozen=True, slots=True)
class DoorSettings:
    door_id: str
    direction: str | None
    open_seconds: float
    anti_passback: AntiPassback = field(default_factory=AntiPassback)
    face: str = "off"  # "off" | "holder" | "always": when card + face is required
    face_seconds: float = 5.0  # how long the card + face check may take
    site: SiteCards = field(default_factory=SiteCards)
    qr_skew_seconds: int = DEFAULT_SKEW_S  # how far phone and terminal clocks may disagree


@dataclass(frozen=True, slots=True)
class TapOutcome:
    """One decided tap, after the gate has reported (or failed)."""

    at: datetime
    credential: Credential | None
    decision: Decision
    committed: Committed
    passage: PassageOutcome | None
    passage_reason: Reason | None = None


@dataclass(frozen=True, slots=True)
class FlowNotice:
    at: datetime
    notice: Notice
    detail: str = ""


Listener = Callable[[TapOutcome | FlowNotice], None]


@dataclass(slots=True)
class _Presentation:
    """One presentation in progress: what was presented, what was decided, how far it got."""

    credential: Credential | None
    at: datetime
    request: DoorRequest | None = None
    view: DoorView | None = None
    view_seq: int = 0
    decision: Decision | None = None
    face: FaceResult | None = None  # the card + face check's result, for the evidence still
    evidence: Frame | None = field(default=None, repr=False)  # a face-only spoof's frame
    committed: Committed | None = None
    reply: RemoteOpenOrdered | None = None
    passage: PassageOutcome | None = None
    passage_reason: Reason | None = None
    ticket: int = 0
    deadline: float = 0.0


_PASSAGE = {
    PassageReport.PASSED: PassageOutcome.PASSED,
    PassageReport.NOT_PASSED: PassageOutcome.TIMEOUT,
    PassageReport.GATE_FAULT: PassageOutcome.TIMEOUT,
}


class DoorFlow:
    """``store`` is read for views only; the loop commits what the flow asks it to."""

    def __init__(self, *, settings: DoorSettings, store: Store, face_checks: bool = False) -> None:
        self.settings = settings
        self.store = store
        # Whether this door can check faces; without a camera card + face is not asked for.
        self.face_checks = face_checks
        self.state = DoorState.IDLE
        self.mode = DoorMode.NORMAL
        self.listeners: list[Listener] = []
        self._held: str | None = None
        self._current: _Presentation | None = None
        self._deferred = Deferred()
        self._tickets = 0
        self._codes = qr.QrCheck(store, settings.qr_skew_seconds)
        self.last: Judged | None = None

    # --- what the loop asks -------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self.state is DoorState.IDLE

    def take_deferred(self) -> FlowEvent | None:
        return self._deferred.take() if self.idle else None

    def deadline(self) -> float | None:
        current = self._current
        return None if current is None or not current.deadline else current.deadline

    def request_for(self, credential: Credential) -> DoorRequest:
        """The request a presentation of ``credential`` makes here, now."""
        s = self.settings
        policy = FacePolicy(s.face) if self.face_checks else FacePolicy.OFF
        return DoorRequest(credential, s.door_id, s.direction, self.mode, policy, site=s.site)

    def view_for(self, credential: Credential, now: datetime) -> DoorView:
        s = self.settings
        if isinstance(credential, FaceCredential | QrCredential):
            return self.store.door_view_for_holder(
                credential.holder_id, s.door_id, now.date(), s.anti_passback
            )
        return self.store.door_view(credential.number or "", s.door_id, now.date(), s.anti_passback)

    # --- events -------------------------------------------------------------------------------

    def step(self, event: FlowEvent, now: Moment) -> list[Command]:
        if isinstance(event, Tick):
            return self._tick(now)
        if isinstance(event, Recorded | NotRecorded):
            return self._recorded(event, now)
        if isinstance(event, GateReported):
            return self._gate_reported(event, now)
        if isinstance(event, FaceChecked):
            return self._face_checked(event, now)
        if not self.idle:
            if not self._deferred.add(event):
                logger.warning("door busy and %d presentations waiting: dropped %s",
                               self._deferred.limit, type(event).__name__)  # fmt: skip
            return []
        return self._present_event(event, now)

    def _present_event(self, event: FlowEvent, now: Moment) -> list[Command]:
        if isinstance(event, CardRemoved):
            self._held = None
        elif isinstance(event, TapIncomplete):
            self._held = None
            return [Tell(FlowNotice(now.local, Notice.TAP_AGAIN, event.detail))]
        elif isinstance(event, CardPresented | FaceSeen):
            return self._present(event.credential, now)
        elif isinstance(event, QrPresented):
            return self._present_code(event.text, now)
        elif isinstance(event, QrRemoved):
            if self._held is not None and self._held.startswith("qr:"):
                self._held = None
        elif isinstance(event, FaceSpoofed):
            spoof = FaceCredential(event.holder_id, event.score_milli or 0, live=False)
            return self._decide(_Presentation(spoof, now.local, evidence=event.evidence), now)
        elif isinstance(event, FaceGone):
            if self._held is not None and self._held.startswith("face:"):
                self._held = None
        elif isinstance(event, FaceNotRecognised):
            return [Tell(FlowNotice(now.local, Notice.FACE_UNKNOWN, str(event.outcome)))]
        elif isinstance(event, RemoteOpenOrdered):
            return self._remote_open(event, now)
        return []

    def _present(self, credential: Credential, now: Moment) -> list[Command]:
        key = held_key(credential)
        if key == self._held:
            return [Tell(FlowNotice(now.local, Notice.HELD))]
        self._held = key
        return self._decide(_Presentation(credential, now.local), now)

    def _present_code(self, text: str, now: Moment) -> list[Command]:
        # Held is checked on the text, before verifying: a code still in view was accepted a
        # moment ago and would now be its own replay.
        key = qr.held_key(text)
        if key == self._held:
            return [Tell(FlowNotice(now.local, Notice.HELD))]
        self._held = key
        credential = self._codes.credential(text, now.local)
        return self._decide(_Presentation(credential, now.local), now)

    def _decide(self, tap: _Presentation, now: Moment) -> list[Command]:
        assert tap.credential is not None
        tap.view = view = self.view_for(tap.credential, now.local)
        tap.request = self.request_for(tap.credential)
        tap.view_seq = view.view_seq
        decision = decide(tap.request, view, now.local)
        self.last = Judged(tap.request, view, decision, now.local)
        if decision.need is Need.FACE and decision.holder_id is not None:
            self._tickets += 1
            tap.ticket = self._tickets
            tap.deadline = now.mono + self.settings.face_seconds + GRACE_SECONDS
            self._current, self.state = tap, DoorState.FACE
            return [VerifyFace(tap.ticket, decision.holder_id, self.settings.face_seconds)]
        return self._record(tap, decision, now)

    def _face_checked(self, event: FaceChecked, now: Moment) -> list[Command]:
        tap = self._current
        if self.state is not DoorState.FACE or tap is None or event.ticket != tap.ticket:
            return []  # a check this flow stopped waiting for
        tap.face = event.result
        result = event.result
        evidence = FaceEvidence(
            result.outcome,
            _milli(result.score),
            _milli(result.threshold),
            None if result.rejection is None else str(result.rejection),
        )
        assert tap.request is not None and tap.view is not None
        tap.request = replace(tap.request, face=evidence)
        decision = decide(tap.request, tap.view, now.local)
        self.last = Judged(tap.request, tap.view, decision, now.local)
        return self._record(tap, decision, now)

    def _remote_open(self, order: RemoteOpenOrdered, now: Moment) -> list[Command]:
        tap = _Presentation(None, now.local, reply=order, view_seq=self.store.view_seq)
        request = RemoteOpenRequest(self.settings.door_id, order.reason, order.by, self.mode)
        decision = decide(request, None, now.local)
        self.last = Judged(request, None, decision, now.local)
        return self._record(tap, decision, now)

    def _record(self, tap: _Presentation, decision: Decision, now: Moment) -> list[Command]:
        tap.decision, tap.deadline = decision, 0.0
        self._current, self.state = tap, DoorState.RECORDING
        place = self._place(now, tap.view_seq)
        return [record.door_commit(decision, place, tap.credential)]

    def _place(self, now: Moment, view_seq: int) -> record.Place:
        s = self.settings
        return record.Place(now.local, int(now.mono * 1e9), view_seq, s.door_id, s.direction)

    def _recorded(self, event: Recorded | NotRecorded, now: Moment) -> list[Command]:
        tap = self._current
        if self.state is not DoorState.RECORDING or tap is None or tap.decision is None:
            return []
        if tap.committed is not None:  # the passage record
            if isinstance(event, NotRecorded):
                logger.error("passage outcome not recorded: %s", event.error)
            return self._done(tap, now)
        decision = tap.decision
        if isinstance(event, NotRecorded):
            logger.error("decision not recorded, the gate stays shut: %s", event.error)
            commands: list[Command] = [
                Tell(FlowNotice(now.local, Notice.STORE_FAILED, event.error))
            ]
            if tap.reply is not None and tap.reply.reply is not None:
                commands.append(Reply(tap.reply.reply, refusal=f"not recorded: {event.error}"))
            self._current, self.state = None, DoorState.IDLE
            return commands
        tap.committed = committed = event.committed
        logger.info(
            "%s %s %s",
            "tap" if tap.reply is None else "remote open",
            "allowed" if decision.allowed else "denied",
            decision.reason,
            extra={
                "seq": committed.seq,
                "card": mask_card_number(decision.card_number or ""),
                "door": self.settings.door_id,
                "alert": decision.alert,
            },
        )
        commands = self._evidence(tap, committed, now)
        if tap.reply is not None and tap.reply.reply is not None:
            if decision.allowed:
                commands.append(Reply(tap.reply.reply, {"opened": True, "seq": committed.seq}))
            else:
                commands.append(Reply(tap.reply.reply, refusal="the door is locked down"))
        if decision.gate is GateAction.OPEN:
            self._tickets += 1
            tap.ticket = self._tickets
            tap.deadline = now.mono + self.settings.open_seconds + GRACE_SECONDS
            self.state = DoorState.OPEN
            commands.append(
                OpenGate(tap.ticket, self.settings.direction, self.settings.open_seconds)
            )
            return commands
        if decision.gate is GateAction.RELEASED:
            tap.passage_reason = Reason.FREE_PASSAGE  # already released: nothing to open
        return commands + self._done(tap, now)

    def _evidence(self, tap: _Presentation, committed: Committed, now: Moment) -> list[Command]:
        """The frame behind a security event (a lent card's face, a photo held up), if any."""
        decision = tap.decision
        assert decision is not None
        frame = tap.evidence if tap.face is None else tap.face.evidence
        if decision.alert is None or frame is None:
            return []
        return [KeepStill(frame, str(decision.alert), decision.holder_id, committed.seq, now.local)]

    def _gate_reported(self, event: GateReported, now: Moment) -> list[Command]:
        tap = self._current
        if self.state is not DoorState.OPEN or tap is None or event.ticket != tap.ticket:
            return []
        if event.report is PassageReport.GATE_FAULT:
            logger.error("gate failed after an allowed tap: %s", event.detail)
        assert tap.decision is not None and tap.committed is not None
        passage = decide(PassageRequest(tap.decision, event.report), None, now.local)
        tap.passage, tap.passage_reason = _PASSAGE[event.report], passage.reason
        tap.deadline = 0.0
        self.state = DoorState.RECORDING
        place = self._place(now, tap.view_seq)
        return [record.passage_commit(passage, place, tap.committed.id)]

    def _tick(self, now: Moment) -> list[Command]:
        tap = self._current
        if tap is None or not tap.deadline or now.mono < tap.deadline:
            return []
        if self.state is DoorState.FACE:
            logger.error("the face check did not answer in time")
            return self._face_checked(
                FaceChecked(tap.ticket, FaceResult(FaceOutcome.CAMERA_FAULT)), now
            )
        if self.state is DoorState.OPEN:
            detail = "the gate did not report within its open window"
            return self._gate_reported(
                GateReported(tap.ticket, PassageReport.GATE_FAULT, detail), now
            )
        return []

    def _done(self, tap: _Presentation, now: Moment) -> list[Command]:
        self._current, self.state = None, DoorState.IDLE
        assert tap.decision is not None and tap.committed is not None
        outcome = TapOutcome(
            tap.at, tap.credential, tap.decision, tap.committed, tap.passage, tap.passage_reason
        )
        return [Tell(outcome)]


def _milli(value: float | None) -> int | None:
    return None if value is None else round(value * 1000)
