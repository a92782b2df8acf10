"""消费纠错: giving back an over-charge as a new, compensating transaction.

A correction never edits the original: it is its own journal record referencing the original's
id, authorised by a supervisor's card, and it can in total give back at most what was paid.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime

from models.cards import Card, Credential, Holder
from models.credential import SiteCards, check_credential
from models.decision import Decision
from models.pos import Merchant
from models.reasons import Reason
from models.wallet import Payment, Purse, Split, refund_split


@dataclass(frozen=True, slots=True)
class OriginalPayment:
    """An allowed payment from this terminal's journal."""

    tx_id: str
    holder_id: str
    card: str
    amount: int
    split: Split


@dataclass(frozen=True, slots=True)
class CorrectionRequest:
    supervisor: Credential
    tx_id: str
    amount: int  # fen to give back; ignored for a work meal, which gives back the meal
    site: SiteCards = field(default_factory=SiteCards)


@dataclass(frozen=True, slots=True)
class CorrectionView:
    view_seq: int
    merchant: Merchant
    supervisor_card: Card | None = None
    supervisor_holder: Holder | None = None
    supervisor_newest_issue_seq: int | None = None
    original: OriginalPayment | None = None
    refunded: tuple[tuple[Purse, int], ...] = ()  # what earlier corrections already gave back


def decide_correction(request: CorrectionRequest, view: CorrectionView, now: datetime) -> Decision:
    """An allowed correction carries the refund: positive amounts per purse to give back.

    Every correction record says whose card authorised it, allowed or not.
    """
    if now.tzinfo is None:
        raise ValueError("decide needs a timezone-aware site-local time")
    supervisor = view.supervisor_holder
    return replace(
        _decide(request, view, now), authorised_by=None if supervisor is None else supervisor.id
    )


def _decide(request: CorrectionRequest, view: CorrectionView, now: datetime) -> Decision:
    checked = check_credential(
        request.supervisor,
        view.supervisor_card,
        view.supervisor_holder,
        view.supervisor_newest_issue_seq,
        now.date(),
        for_payment=False,
        site=request.site,
    )
    if isinstance(checked, Decision):
        return checked
    supervisor = checked.holder.id
    if supervisor not in view.merchant.supervisors:
        return Decision.deny(Reason.CORRECTION_NOT_AUTHORISED, holder_id=supervisor)
    original = view.original
    if original is None:
        return Decision.deny(Reason.CORRECTION_NOT_FOUND, detail=request.tx_id)

    def allowed(payment: Payment) -> Decision:
        return Decision(
            True,
            Reason.ALLOWED,
            original.holder_id,
            original.card,
            detail=f"by {supervisor}",
            payment=payment,
        )

    refunded = dict(view.refunded)
    if any(purse is Purse.WORK_MEALS for purse, _ in original.split):
        if refunded.get(Purse.WORK_MEALS, 0) >= 1:
            return Decision.deny(Reason.CORRECTION_EXCEEDS, holder_id=original.holder_id)
        return allowed(Payment(0, ((Purse.WORK_MEALS, 1),)))
    split = refund_split(original.split, refunded, request.amount)
    if split is None:
        return Decision.deny(
            Reason.CORRECTION_EXCEEDS,
            holder_id=original.holder_id,
            detail=f"asked {request.amount} of {original.amount}",
        )
    return allowed(Payment(request.amount, split))
