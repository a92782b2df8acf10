"""The door rules: may this credential pass this door now?

Pure: everything the rules need arrives in :class:`DoorView`, "now" arrives as an argument. The
checks run in a fixed order so the reason is the most useful one for the card office: security
(a lost or cloned card) first, then the card's lifecycle, then the holder, then permissions.
"""

from dataclasses import dataclass, field
from datetime import date, datetime

from models.cards import (
    Card,
    CardFault,
    CardStatus,
    Credential,
    Genuineness,
    Holder,
    HolderStatus,
    PresentedCard,
)
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


_STATUS_DENIALS: dict[CardStatus, tuple[Reason, Alert | None]] = {
    CardStatus.LOST: (Reason.CARD_LOST, Alert.LOST_CARD_USED),
    CardStatus.REPLACED: (Reason.CARD_REPLACED, Alert.REPLACED_CARD_USED),
    CardStatus.CANCELLED: (Reason.CARD_CANCELLED, Alert.CANCELLED_CARD_USED),
    CardStatus.FROZEN: (Reason.CARD_FROZEN, None),
    CardStatus.EXPIRED: (Reason.CARD_EXPIRED, None),
    CardStatus.SPEND_ONLY: (Reason.CARD_SPEND_ONLY, None),
}


def _outside(today: date, start: date | None, end: date | None) -> Reason | None:
    if start is not None and today < start:
        return Reason.CARD_NOT_YET_VALID
    if end is not None and today > end:
        return Reason.CARD_EXPIRED
    return None


def _check_card(presented: PresentedCard, card: Card, view: DoorView, today: date) -> Decision:
    number, holder_id = card.number, card.holder_id
    status_denial = _STATUS_DENIALS.get(card.status)
    if status_denial is not None:
        reason, alert = status_denial
        return Decision.deny(reason, holder_id=holder_id, card_number=number, alert=alert)
    newest = max(card.issue_seq, view.newest_issue_seq or 0)
    presented_seq = card.issue_seq if presented.issue_seq is None else presented.issue_seq
    if presented_seq < newest:
        return Decision.deny(
            Reason.CARD_REPLACED,
            holder_id=holder_id,
            card_number=number,
            alert=Alert.REPLACED_CARD_USED,
            detail=f"issue sequence {presented_seq} < current {newest}",
        )
    if presented_seq > card.issue_seq:
        return Decision.deny(
            Reason.CARD_MISMATCH,
            holder_id=holder_id,
            card_number=number,
            detail=f"card claims issue sequence {presented_seq}, registry has {card.issue_seq}",
        )
    # The registry's window is authoritative, but a card whose own file says it has ended is
    # treated as ended too: the stricter of the two wins.
    for start, end in (
        (card.valid_from, card.valid_until),
        (presented.valid_from, presented.valid_until),
    ):
        outside = _outside(today, start, end)
        if outside is not None:
            return Decision.deny(outside, holder_id=holder_id, card_number=number)
    return Decision(True, Reason.ALLOWED, holder_id, number)


def _check_holder(holder: Holder | None, card: Card, today: date) -> Decision | None:
    number = card.number
    if holder is None:
        return Decision.deny(Reason.HOLDER_UNKNOWN, holder_id=card.holder_id, card_number=number)
    if holder.status is HolderStatus.SPEND_ONLY:
        return Decision.deny(Reason.CARD_SPEND_ONLY, holder_id=holder.id, card_number=number)
    if holder.status is not HolderStatus.ACTIVE:
        return Decision.deny(Reason.HOLDER_INACTIVE, holder_id=holder.id, card_number=number)
    if _outside(today, holder.valid_from, holder.valid_until) is not None:
        return Decision.deny(
            Reason.HOLDER_INACTIVE,
            holder_id=holder.id,
            card_number=number,
            detail="outside the holder's registration period",
        )
    return None


def decide_door(request: DoorRequest, view: DoorView, now: datetime) -> Decision:
    """Decide a door request. ``now`` is the site-local wall time (timezone-aware)."""
    if now.tzinfo is None:
        raise ValueError("decide needs a timezone-aware site-local time")
    credential = request.credential
    if isinstance(credential, CardFault):
        return Decision.deny(
            credential.reason, card_number=credential.number, detail=credential.detail
        )
    if credential.genuine is Genuineness.NOT_GENUINE:
        return Decision.deny(
            Reason.CARD_NOT_GENUINE,
            card_number=credential.number,
            holder_id=view.card.holder_id if view.card else None,
            alert=Alert.CLONED_CARD,
        )
    card = view.card
    if card is None or card.number != credential.number:
        return Decision.deny(Reason.CARD_UNKNOWN, card_number=credential.number)
    today = now.date()
    card_decision = _check_card(credential, card, view, today)
    if not card_decision.allowed:
        return card_decision
    holder_denial = _check_holder(view.holder, card, today)
    if holder_denial is not None:
        return holder_denial
    groups = [g for g in view.groups if request.door_id in g.doors]
    if not groups:
        return Decision.deny(Reason.NO_ACCESS, holder_id=card.holder_id, card_number=card.number)
    if not any(group.open_at(now, view.calendars) for group in groups):
        return Decision.deny(
            Reason.OUTSIDE_SCHEDULE, holder_id=card.holder_id, card_number=card.number
        )
    return card_decision
