"""The door rules: may this credential pass this door now?

Pure: everything the rules need arrives in :class:`DoorView`, "now" arrives as an argument. The
checks run in a fixed order so the reason is the most useful one for the card office: security
(a lost or cloned card) first, then the card's lifecycle, then the holder, then permissions.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.cards import Card, Credential, Holder
from models.credential import check_credential
from models.decision import Alert, Decision
from models.reasons import Reason
from models.schedule import AccessGroup, Calendar


@dataclass(frozen=True, slots=True)
class DoorRequest:
    """A credential presented at a door, in a direction (``in``/``out``) when the door has one."""

    credential: Credential
    door_id: str
    direction: str | None = None


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
    checked = check_credential(
        request.credential,
        view.card,
        view.holder,
        view.newest_issue_seq,
        now.date(),
        for_payment=False,
    )
    if isinstance(checked, Decision):
        return checked
    card = checked.card
    groups = [g for g in view.groups if request.door_id in g.doors]
    if not groups:
        return Decision.deny(Reason.NO_ACCESS, holder_id=card.holder_id, card_number=card.number)
    if not any(group.open_at(now, view.calendars) for group in groups):
        return Decision.deny(
            Reason.OUTSIDE_SCHEDULE, holder_id=card.holder_id, card_number=card.number
        )
    allowed = Decision(True, Reason.ALLOWED, card.holder_id, card.number)
    rule, last = view.anti_passback, view.last_passage
    if (
        rule.mode != "off"
        and request.direction in ("in", "out")
        and last is not None
        and last.direction == request.direction
        and timedelta(0) <= now - last.at < timedelta(minutes=rule.minutes)
    ):
        detail = f"last {last.direction} at {last.at.isoformat(timespec='minutes')}"
        if rule.mode == "hard":
            return Decision.deny(
                Reason.ANTI_PASSBACK,
                holder_id=card.holder_id,
                card_number=card.number,
                alert=Alert.ANTI_PASSBACK,
                detail=detail,
            )
        return Decision(
            True, Reason.ALLOWED, card.holder_id, card.number, Alert.ANTI_PASSBACK, detail
        )
    return allowed
