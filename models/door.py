"""The door rules: may this credential pass this door now, and what does the gate do?

Pure: everything the rules need arrives in :class:`DoorView` and the request (the credential,
the face evidence gathered so far, the door mode HQ ordered), "now" arrives as an argument. The
checks run in a fixed order so the reason is the most useful one for the card office: security
(a lost or cloned card) first, then the card's lifecycle, then the holder, then permissions, then
the door mode, and last the face a card + face door asks for.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from models.cards import Card, Credential, FaceCredential, Holder
from models.credential import Checked, SiteCards, check_credential, credential_kind
from models.decision import Alert, Decision, GateAction, Need
from models.face import FACE_DENIALS, FaceEvidence
from models.reasons import Reason
from models.schedule import AccessGroup, Calendar, since


class DoorMode(StrEnum):
    """What HQ ordered for this door (``set_mode``); kept across restarts."""

    NORMAL = "normal"
    FREE = "free"  # evacuation: the gate stands released, taps are still recorded
    LOCKED = "locked"  # lockdown: nothing opens it


class FacePolicy(StrEnum):
    """When a card needs its holder's face as well (card + face, 不得转借)."""

    OFF = "off"
    HOLDER = "holder"  # only for holders HQ marks require_face
    ALWAYS = "always"


@dataclass(frozen=True, slots=True)
class DoorRequest:
    """A credential presented at a door, in a direction (``in``/``out``) when the door has one,
    with the door's mode and face policy and any face evidence gathered for this tap."""

    credential: Credential
    door_id: str
    direction: str | None = None
    mode: DoorMode = DoorMode.NORMAL
    face_policy: FacePolicy = FacePolicy.OFF
    face: FaceEvidence | None = None
    site: SiteCards = field(default_factory=SiteCards)


@dataclass(frozen=True, slots=True)
class RemoteOpenRequest:
    """HQ's ``open`` command: a door opened without a credential, on ``by``'s authority."""

    door_id: str
    reason: str
    by: str
    mode: DoorMode = DoorMode.NORMAL


class PassageReport(StrEnum):
    """What the turnstile said after it was released for an admitted decision."""

    PASSED = "passed"
    NOT_PASSED = "not_passed"
    GATE_FAULT = "gate_fault"  # it could not be opened, or the link dropped meanwhile


@dataclass(frozen=True, slots=True)
class PassageRequest:
    """The passage outcome of ``admitted``, recorded as its own record (docs/architecture.md)."""

    admitted: Decision
    report: PassageReport


@dataclass(frozen=True, slots=True)
class AntiPassback:
    """No second entry without an exit (and no second exit without an entry) within ``minutes``.

    ``soft`` admits and raises an event; ``hard`` refuses. Only confirmed passages count.
    """

    mode: str = "off"  # "off" | "soft" | "hard"
    minutes: int = 720


@dataclass(frozen=True, slots=True)
class Passage:
    """The card's last confirmed passage in this anti-passback zone."""

    direction: str
    at: datetime


@dataclass(frozen=True, slots=True)
class DoorView:
    """What the store knew when the request arrived, as of change-log position ``view_seq``.

    ``newest_issue_seq`` is the highest issue sequence among all cards of the card's holder: a card
    below it is a void older card even if HQ has not yet marked it replaced.
    """

    view_seq: int
    card: Card | None = None
    holder: Holder | None = None
    newest_issue_seq: int | None = None
    groups: tuple[AccessGroup, ...] = ()
    calendars: tuple[Calendar, ...] = field(default_factory=tuple)
    anti_passback: AntiPassback = field(default_factory=AntiPassback)
    last_passage: Passage | None = None


def decide_door(request: DoorRequest, view: DoorView, now: datetime) -> Decision:
    """Decide a door request. ``now`` is the site-local wall time (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("decide needs a timezone-aware site-local time")
    kind = credential_kind(request.credential)
    checked = check_credential(
        request.credential,
        view.card,
        view.holder,
        view.newest_issue_seq,
        now.date(),
        for_payment=False,
        site=request.site,
    )
    if isinstance(checked, Decision):
        return _as_face(replace(checked, credential=kind), request.credential)
    return _as_face(_permitted(request, view, checked, now, kind), request.credential)


def _as_face(decision: Decision, credential: Credential) -> Decision:
    if isinstance(credential, FaceCredential):
        return replace(decision, face_score=credential.score_milli)
    return decision


def _permitted(
    request: DoorRequest, view: DoorView, checked: Checked, now: datetime, kind: str
) -> Decision:
    holder_id, number = checked.holder.id, checked.card_number

    def deny(reason: Reason, alert: Alert | None = None, detail: str = "") -> Decision:
        return Decision(False, reason, holder_id, number, alert, detail, credential=kind)

    groups = [g for g in view.groups if request.door_id in g.doors]
    if not groups:
        return deny(Reason.NO_ACCESS)
    if not any(group.open_at(now, view.calendars) for group in groups):
        return deny(Reason.OUTSIDE_SCHEDULE)
    alert, detail = None, ""
    rule, last = view.anti_passback, view.last_passage
    if (
        rule.mode != "off"
        and request.direction in ("in", "out")
        and last is not None
        and last.direction == request.direction
        and since(last.at, now) < timedelta(minutes=rule.minutes)
    ):
        detail = f"last {last.direction} at {last.at.isoformat(timespec='minutes')}"
        if last.at > now:
            detail += " (the clock is behind the journal)"
        if rule.mode == "hard":
            return deny(Reason.ANTI_PASSBACK, alert=Alert.ANTI_PASSBACK, detail=detail)
        alert = Alert.ANTI_PASSBACK  # soft: admitted, and security hears of it
    if request.mode is DoorMode.LOCKED:
        return deny(Reason.DOOR_LOCKED, detail="lockdown ordered by HQ")
    gate = GateAction.RELEASED if request.mode is DoorMode.FREE else GateAction.OPEN
    allowed = Decision(
        True, Reason.ALLOWED, holder_id, number, alert, detail, credential=kind, gate=gate
    )
    if isinstance(request.credential, FaceCredential) or not _face_required(
        request.face_policy, checked.holder
    ):
        return allowed
    face = request.face
    if face is None:
        return Decision.asking(
            Need.FACE, Reason.FACE_REQUIRED, holder_id=holder_id, card_number=number
        )
    # Protocol v1 has no "qr+face": a code checked with its holder's face stays "qr", and the
    # record's face score says the face was checked too.
    checked_kind = "qr" if kind == "qr" else "card+face"
    score = replace(allowed, credential=checked_kind, face_score=face.score_milli)
    if face.matched:
        return score
    reason, face_alert = FACE_DENIALS.get(face.outcome, (Reason.FACE_UNAVAILABLE, None))
    return replace(
        score,
        allowed=False,
        reason=reason,
        alert=face_alert,
        detail=face.describe(),
        event=face.event_detail(),
        gate=GateAction.NONE,
    )


def _face_required(policy: FacePolicy, holder: Holder) -> bool:
    return policy == FacePolicy.ALWAYS or (policy == FacePolicy.HOLDER and holder.require_face)


def decide_remote_open(request: RemoteOpenRequest) -> Decision:
    """HQ's remote open: journalled like a tap, with the security event saying who ordered it."""
    if request.mode is DoorMode.LOCKED:
        return Decision(
            False,
            Reason.DOOR_LOCKED,
            detail="remote open refused: lockdown ordered by HQ",
            credential="remote",
            authorised_by=request.by,
        )
    return Decision(
        True,
        Reason.REMOTE_OPEN,
        alert=Alert.REMOTE_OPEN,
        detail=request.reason,
        credential="remote",
        event=(("reason", request.reason), ("by", request.by)),
        gate=GateAction.RELEASED if request.mode is DoorMode.FREE else GateAction.OPEN,
        authorised_by=request.by,
    )


_PASSAGE_REASONS = {
    PassageReport.PASSED: Reason.PASSAGE_CONFIRMED,
    PassageReport.NOT_PASSED: Reason.PASSAGE_TIMEOUT,
    PassageReport.GATE_FAULT: Reason.GATE_FAULT,
}


def unknown_passage(holder_id: str | None, card_number: str | None, credential: str) -> Decision:
    """The passage record of an admission whose outcome nobody saw: the terminal stopped (a
    crash, a power cut) while the gate was open. Whether somebody passed is not claimed either
    way, so anti-passback does not count it."""
    return Decision(
        True, Reason.PASSAGE_UNKNOWN, holder_id, card_number, credential=credential, used=None
    )


def decide_passage(request: PassageRequest) -> Decision:
    """The passage record of an admission: used only when the turnstile saw somebody pass."""
    admitted = request.admitted
    if not admitted.allowed or admitted.gate is not GateAction.OPEN:
        raise ValueError("only an admission that opened the gate has a passage")
    return Decision(
        True,
        _PASSAGE_REASONS[request.report],
        admitted.holder_id,
        admitted.card_number,
        credential=admitted.credential,
        used=request.report is PassageReport.PASSED,
    )
