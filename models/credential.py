"""Checks every credential passes before any door or POS rule: authenticity, lifecycle, validity.

Door and POS differ in one place only: a spend-only card (staff who left, RULES.md) may still pay
at a POS from its remaining balance until its deadline, but opens no door.

A face (:class:`~models.cards.FaceCredential`) is judged on the holder's current card: the card
checks that need a card in the field (genuineness, what the card's own file says) do not apply,
the card's lifecycle and registry window do. All credentials resolve to the same holder and the
same permissions (RULES.md), and a holder who could not pass with their card does not pass by
face.
"""

from dataclasses import dataclass
from datetime import date

from models.cards import (
    Card,
    CardFault,
    CardStatus,
    Credential,
    FaceCredential,
    Genuineness,
    Holder,
    HolderStatus,
)
from models.decision import Alert, Decision
from models.reasons import Reason

_STATUS_DENIALS: dict[CardStatus, tuple[Reason, Alert | None]] = {
    CardStatus.LOST: (Reason.CARD_LOST, Alert.LOST_CARD_USED),
    CardStatus.REPLACED: (Reason.CARD_REPLACED, Alert.REPLACED_CARD_USED),
    CardStatus.CANCELLED: (Reason.CARD_CANCELLED, Alert.CANCELLED_CARD_USED),
    CardStatus.FROZEN: (Reason.CARD_FROZEN, None),
    CardStatus.EXPIRED: (Reason.CARD_EXPIRED, None),
    CardStatus.SPEND_ONLY: (Reason.CARD_SPEND_ONLY, None),
}


@dataclass(frozen=True, slots=True)
class Checked:
    """A credential that passed: whose it is, and whether it may only spend its balance."""

    card: Card
    holder: Holder
    spend_only: bool


def _outside(today: date, start: date | None, end: date | None) -> Reason | None:
    if start is not None and today < start:
        return Reason.CARD_NOT_YET_VALID
    if end is not None and today > end:
        return Reason.CARD_EXPIRED
    return None


def check_credential(
    credential: Credential,
    card: Card | None,
    holder: Holder | None,
    newest_issue_seq: int | None,
    today: date,
    *,
    for_payment: bool,
) -> Checked | Decision:
    """The credential's holder if every check passes, else the denial (with any alert)."""
    if isinstance(credential, FaceCredential):
        return _check_face(
            credential, card, holder, newest_issue_seq, today, for_payment=for_payment
        )
    if isinstance(credential, CardFault):
        return Decision.deny(
            credential.reason, card_number=credential.number, detail=credential.detail
        )
    if credential.genuine is Genuineness.NOT_GENUINE:
        return Decision.deny(
            Reason.CARD_NOT_GENUINE,
            card_number=credential.number,
            holder_id=card.holder_id if card else None,
            alert=Alert.CLONED_CARD,
        )
    if card is None or card.number != credential.number:
        return Decision.deny(Reason.CARD_UNKNOWN, card_number=credential.number)
    number, holder_id = card.number, card.holder_id
    status_denial = _STATUS_DENIALS.get(card.status)
    if status_denial is not None and not (for_payment and card.status is CardStatus.SPEND_ONLY):
        reason, alert = status_denial
        return Decision.deny(reason, holder_id=holder_id, card_number=number, alert=alert)
    newest = max(card.issue_seq, newest_issue_seq or 0)
    presented_seq = card.issue_seq if credential.issue_seq is None else credential.issue_seq
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
        (credential.valid_from, credential.valid_until),
    ):
        outside = _outside(today, start, end)
        if outside is not None:
            return Decision.deny(outside, holder_id=holder_id, card_number=number)
    return _check_holder(card, holder, today, for_payment=for_payment)


def _check_holder(
    card: Card, holder: Holder | None, today: date, *, for_payment: bool
) -> Checked | Decision:
    """The holder's own checks, after the card's: registered, active, within their period."""
    number, holder_id = card.number, card.holder_id
    if holder is None:
        return Decision.deny(Reason.HOLDER_UNKNOWN, holder_id=holder_id, card_number=number)
    spend_only = card.status is CardStatus.SPEND_ONLY or holder.status is HolderStatus.SPEND_ONLY
    if holder.status is HolderStatus.SPEND_ONLY and not for_payment:
        return Decision.deny(Reason.CARD_SPEND_ONLY, holder_id=holder_id, card_number=number)
    if holder.status is HolderStatus.INACTIVE:
        return Decision.deny(Reason.HOLDER_INACTIVE, holder_id=holder_id, card_number=number)
    if _outside(today, holder.valid_from, holder.valid_until) is not None:
        return Decision.deny(
            Reason.HOLDER_INACTIVE,
            holder_id=holder_id,
            card_number=number,
            detail="outside the holder's registration period",
        )
    if spend_only and holder.spend_only_until is not None and today > holder.spend_only_until:
        return Decision.deny(Reason.CARD_SPEND_ONLY_ENDED, holder_id=holder_id, card_number=number)
    return Checked(card, holder, spend_only)


def _check_face(
    credential: FaceCredential,
    card: Card | None,
    holder: Holder | None,
    newest_issue_seq: int | None,
    today: date,
    *,
    for_payment: bool,
) -> Checked | Decision:
    """A recognised face, judged on the holder's current card (``card``, from the store).

    No security event here: nobody presented the lost or replaced card, its holder stood at the
    camera. The refusal still gives the card's reason, so the card office sees why.
    """
    holder_id = credential.holder_id
    if card is None or card.holder_id != holder_id:
        if holder is None or holder.id != holder_id:
            return Decision.deny(Reason.HOLDER_UNKNOWN, holder_id=holder_id)
        # Every holder has a card (RULES.md); one without is not (or no longer) set up here.
        return Decision.deny(
            Reason.HOLDER_INACTIVE, holder_id=holder_id, detail="no card on record"
        )
    number = card.number
    if newest_issue_seq is not None and card.issue_seq < newest_issue_seq:
        # The view must carry the current card; an older one is void whatever its status says.
        return Decision.deny(
            Reason.CARD_REPLACED,
            holder_id=holder_id,
            card_number=number,
            detail=f"issue sequence {card.issue_seq} < current {newest_issue_seq}",
        )
    status_denial = _STATUS_DENIALS.get(card.status)
    if status_denial is not None and not (for_payment and card.status is CardStatus.SPEND_ONLY):
        return Decision.deny(status_denial[0], holder_id=holder_id, card_number=number)
    outside = _outside(today, card.valid_from, card.valid_until)
    if outside is not None:
        return Decision.deny(outside, holder_id=holder_id, card_number=number)
    return _check_holder(card, holder, today, for_payment=for_payment)
