"""The door flow: tap -> decide -> durable commit -> open -> passage confirmed or timed out.

The order is the point: the gate never opens for a decision a power cut could lose, and whatever
the turnstile then reports (someone passed, nobody did, the board failed) is journalled too.
"""

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from enum import StrEnum

from drivers.interfaces import (
    CardPresented,
    CardReader,
    CardRemoved,
    Gate,
    PassageOutcome,
    ReaderEvent,
    TapIncomplete,
)
from models.cards import Credential, FaceCredential, held_key, mask_card_number
from models.decide import decide
from models.decision import Alert, Decision
from models.door import AntiPassback, DoorRequest
from models.errors import DriverError, StoreError
from models.journal import TransactionDraft
from models.reasons import Reason
from terminal.clock import Clock, rfc3339
from terminal.faces.door import DoorFaces, FaceStep
from terminal.faces.watch import (
    FaceGone,
    FaceNotRecognised,
    FaceSeen,
    FaceSpoofed,
    FaceWatch,
    WatchEvent,
)
from terminal.store import Committed, Effect, PassageUsed, SecurityEvent, Store

logger = logging.getLogger(__name__)


class DoorMode(StrEnum):
    """What HQ ordered for this door (``set_mode``); kept across restarts."""

    NORMAL = "normal"
    FREE = "free"  # evacuation: the gate stands released, taps are still recorded
    LOCKED = "locked"  # lockdown: no tap opens it


MODE_STATE = "door_mode"


class DoorState(StrEnum):
    IDLE = "idle"
    DECIDING = "deciding"
    OPEN = "open"


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


@dataclass(frozen=True, slots=True)
class TapOutcome:
    """One decided tap, after the gate has reported (or failed)."""

    at: datetime
    credential: Credential
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


class DoorFlow:
    def __init__(
        self,
        *,
        settings: DoorSettings,
        reader: CardReader,
        gate: Gate,
        store: Store,
        clock: Clock,
        timezone: tzinfo,
        faces: DoorFaces | None = None,
        watch: FaceWatch | None = None,
    ) -> None:
        self.settings = settings
        self.faces = faces
        self.watch = watch
        self.reader = reader
        self.gate = gate
        self.store = store
        self.clock = clock
        self.timezone = timezone
        self.state = DoorState.IDLE
        self.mode = DoorMode.NORMAL
        self.listeners: list[Listener] = []
        self._held: str | None = None

    def restore_mode(self) -> None:
        """At start: put the gate back into the mode HQ last ordered, which outlives restarts
        (an evacuation does not end because the terminal rebooted)."""
        saved = self.store.state(MODE_STATE)
        if saved is None or saved == DoorMode.NORMAL:
            return
        self.mode = DoorMode(saved)
        try:
            self.gate.set_mode(self.mode)
        except DriverError as exc:
            logger.error("gate not put back into %s mode: %s", self.mode, exc)
        logger.warning("door mode %s restored", self.mode)

    def set_mode(self, mode: str, *, reason: str, by: str) -> None:
        """Change the door mode: the board first, so a refusal there changes nothing here.

        Raises ``ValueError`` for an unknown mode, ``DriverError`` when the board did not take
        it, ``StoreError`` when it could not be recorded (the board has it then: a restart
        puts the previous mode back, which the security event of the failure explains).
        """
        new = DoorMode(mode)
        self.gate.set_mode(new)
        now = self._local_now()
        self.store.put_state(MODE_STATE, new)
        self.mode = new
        details = {"mode": str(new), "reason": reason, "by": by}
        self.store.record_event(
            SecurityEvent("door_mode", details), at=rfc3339(now), door=self.settings.door_id
        )
        logger.warning("door mode %s ordered by %s: %s", new, by, reason)
        self._tell(FlowNotice(now, Notice.MODE, str(new)))

    def _local_now(self) -> datetime:
        return self.clock.now().astimezone(self.timezone)

    def _tell(self, message: TapOutcome | FlowNotice) -> None:
        for listener in self.listeners:
            try:
                listener(message)
            except Exception:
                logger.exception("flow listener failed")

    def poll(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for one reader event and handle it completely."""
        if self.watch is not None:
            while (seen := self.watch.take()) is not None:
                self.handle_face(seen)
            # A face is as much a presentation as a card: do not let it wait behind the reader.
            timeout = min(timeout, 0.05)
        try:
            event = self.reader.next_event(timeout)
        except DriverError as exc:
            logger.warning("reader: %s", exc)
            return
        if event is not None:
            self.handle(event)
        self._journal_alarms()

    def _journal_alarms(self) -> None:
        try:
            alarms = self.gate.alarms()
        except DriverError as exc:
            logger.warning("gate alarms unavailable: %s", exc)
            return
        for alarm in alarms:
            now = self._local_now()
            logger.warning("gate alarm %s", alarm, extra={"door": self.settings.door_id})
            try:
                self.store.record_event(
                    SecurityEvent(alarm, {"source": "gate"}),
                    at=rfc3339(now),
                    door=self.settings.door_id,
                )
            except StoreError as exc:
                logger.error("gate alarm %s not recorded: %s", alarm, exc)
            self._tell(FlowNotice(now, Notice.ALARM, alarm))

    def handle(self, event: ReaderEvent) -> None:
        if isinstance(event, CardRemoved):
            self._held = None
        elif isinstance(event, TapIncomplete):
            self._held = None
            self._tell(FlowNotice(self._local_now(), Notice.TAP_AGAIN, event.detail))
        elif isinstance(event, CardPresented):
            self._present(event.credential)

    def handle_face(self, event: WatchEvent) -> None:
        """What the face-only watch saw (face-only gates)."""
        if isinstance(event, FaceGone):
            if self._held is not None and self._held.startswith("face:"):
                self._held = None
        elif isinstance(event, FaceNotRecognised):
            self._tell(FlowNotice(self._local_now(), Notice.FACE_UNKNOWN, str(event.outcome)))
        elif isinstance(event, FaceSpoofed):
            self._face_spoofed(event)
        elif isinstance(event, FaceSeen):
            self._present(event.credential)

    def _present(self, credential: Credential) -> None:
        key = held_key(credential)
        if key == self._held:
            self._tell(FlowNotice(self._local_now(), Notice.HELD))
            return
        self._held = key
        self._tap(credential)

    def _face_spoofed(self, event: FaceSpoofed) -> None:
        """A face matched a holder but failed liveness: journalled, never admitted."""
        now = self._local_now()
        card = self.store.current_card(event.holder_id)
        decision = Decision.deny(
            Reason.FACE_NOT_LIVE,
            holder_id=event.holder_id,
            card_number=None if card is None else card.number,
            alert=Alert.FACE_SPOOF,
            detail="face-only passage",
        )
        draft = replace(
            self._draft(now, decision, self.store.view_seq, face_score=event.score_milli),
            credential="face",
        )
        security = SecurityEvent("face_spoof", {"reason": str(decision.reason), "face": "not_live"})
        try:
            committed = self.store.commit(draft, security)
        except StoreError as exc:
            logger.error("face spoof attempt not recorded: %s", exc)
            self._tell(FlowNotice(now, Notice.STORE_FAILED, str(exc)))
            return
        if self.watch is not None:
            self.watch.keep_evidence(event, tx_seq=committed.seq, at=now)
        credential = FaceCredential(event.holder_id, event.score_milli or 0)
        self._tell(TapOutcome(now, credential, decision, committed, None))

    def _draft(
        self,
        now: datetime,
        decision: Decision,
        view_seq: int,
        *,
        kind: str = "door",
        ref: str | None = None,
        used: bool | None = None,
        face_score: int | None = None,
    ) -> TransactionDraft:
        return TransactionDraft(
            kind=kind,
            at=rfc3339(now),
            mono_ns=self.clock.monotonic_ns(),
            credential="card",
            decision="allow" if decision.allowed else "deny",
            reason=decision.reason,
            view_seq=view_seq,
            card=decision.card_number,
            holder_id=decision.holder_id,
            door=self.settings.door_id,
            direction=self.settings.direction,
            ref=ref,
            used=used,
            face_score=face_score,
        )

    def remote_open(self, reason: str, by: str) -> Committed | None:
        """An ``open`` command from HQ: journalled like a tap (credential "remote"), then open."""
        if self.mode is DoorMode.LOCKED:
            logger.warning("remote open by %s refused: the door is locked down", by)
            return None
        now = self._local_now()
        decision = Decision(True, Reason.REMOTE_OPEN, detail=reason)
        draft = replace(
            self._draft(now, decision, self.store.view_seq), credential="remote", authorised_by=by
        )
        try:
            committed = self.store.commit(
                draft, SecurityEvent("remote_open", {"reason": reason, "by": by})
            )
        except StoreError as exc:
            logger.error("remote open not recorded, gate stays shut: %s", exc)
            return None
        logger.info("remote open by %s: %s", by, reason, extra={"seq": committed.seq})
        self._pass(decision, committed, self.store.view_seq)
        return committed

    def decide_and_commit(
        self, credential: Credential, now: datetime
    ) -> tuple[Decision, Committed, int]:
        """The core of a tap: view, decide, durable commit. Returns the view seq decided on.

        Raises ``StoreError`` when the decision could not be recorded.
        """
        door_id, passback = self.settings.door_id, self.settings.anti_passback
        if isinstance(credential, FaceCredential):
            view = self.store.door_view_for_holder(
                credential.holder_id, door_id, now.date(), passback
            )
        else:
            view = self.store.door_view(credential.number or "", door_id, now.date(), passback)
        request = DoorRequest(credential, door_id, self.settings.direction)
        decision = decide(request, view, now)
        if self.mode is DoorMode.LOCKED and decision.allowed:
            decision = Decision.deny(
                Reason.DOOR_LOCKED,
                holder_id=decision.holder_id,
                card_number=decision.card_number,
                detail="lockdown ordered by HQ",
            )
        step: FaceStep | None = None
        if (
            self.faces is not None
            and not isinstance(credential, FaceCredential)
            and decision.allowed
            and self.faces.required(self.settings.face, view.holder)
        ):
            # The card may pass; now the face must be its holder's, within faces.card_face_seconds.
            with self.watch.paused() if self.watch is not None else nullcontext():
                step = self.faces.check(decision)
            decision = step.decision
        event = None
        if decision.alert is not None:
            detail: dict[str, object] = {"reason": str(decision.reason), "detail": decision.detail}
            if step is not None:
                detail |= step.event_detail()
            event = SecurityEvent(str(decision.alert), detail)
        score = None if step is None else step.score_milli
        draft = self._draft(now, decision, view.view_seq, face_score=score)
        if isinstance(credential, FaceCredential):
            draft = replace(draft, credential="face", face_score=credential.score_milli)
        elif step is not None:
            draft = replace(draft, credential="card+face")
        committed = self.store.commit(draft, event)
        if step is not None and self.faces is not None:
            self.faces.keep_evidence(step, committed, now)
        return decision, committed, view.view_seq

    def _tap(self, credential: Credential) -> None:
        self.state = DoorState.DECIDING
        try:
            now = self._local_now()
            try:
                decision, committed, view_seq = self.decide_and_commit(credential, now)
            except StoreError as exc:
                logger.error("tap not recorded, gate stays shut: %s", exc)
                self._tell(FlowNotice(now, Notice.STORE_FAILED, str(exc)))
                return
            logger.info(
                "tap %s %s",
                "allowed" if decision.allowed else "denied",
                decision.reason,
                extra={
                    "seq": committed.seq,
                    "card": mask_card_number(decision.card_number or ""),
                    "door": self.settings.door_id,
                    "alert": decision.alert,
                },
            )
            passage, passage_reason = None, None
            if decision.allowed and self.mode is DoorMode.FREE:
                passage_reason = Reason.FREE_PASSAGE  # already released: nothing to open
            elif decision.allowed:
                self.state = DoorState.OPEN
                passage, passage_reason = self._pass(decision, committed, view_seq)
            self._tell(TapOutcome(now, credential, decision, committed, passage, passage_reason))
        finally:
            self.state = DoorState.IDLE

    def _pass(
        self, decision: Decision, committed: Committed, view_seq: int
    ) -> tuple[PassageOutcome, Reason]:
        seconds = self.settings.open_seconds
        try:
            self.gate.open(self.settings.direction, seconds)
            outcome = self.gate.wait_passage(seconds)
            reason = (
                Reason.PASSAGE_CONFIRMED
                if outcome is PassageOutcome.PASSED
                else Reason.PASSAGE_TIMEOUT
            )
        except DriverError as exc:
            logger.error("gate failed after an allowed tap: %s", exc)
            outcome, reason = PassageOutcome.TIMEOUT, Reason.GATE_FAULT
        used = outcome is PassageOutcome.PASSED
        record = Decision(True, reason, decision.holder_id, decision.card_number)
        now = self._local_now()
        effects: list[Effect] = []
        if used and decision.card_number and self.settings.direction:
            effects.append(PassageUsed(decision.card_number, self.settings.direction, now))
        try:
            self.store.commit(
                self._draft(now, record, view_seq, kind="passage", ref=committed.id, used=used),
                effects=effects,
            )
        except StoreError as exc:
            logger.error("passage outcome not recorded: %s", exc)
        return outcome, reason
