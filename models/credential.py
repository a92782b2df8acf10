"""Checks every credential passes before any door or POS rule: authenticity, lifecycle, standing.

Door and POS differ in two places: a spend-only card or holder (staff who left, RULES.md) may still
pay from the remaining balance until its deadline but opens no door, and a frozen balance stops
payments by face but not doors.

A card is judged as the piece of plastic it is: what its chip says (issuer, class, sequence,
validity) must agree with the registry, and its own status counts. A face
(:class:`~models.cards.FaceCredential`) and a verified electronic-card code
(:class:`~models.qr.QrCredential`) are judged on their holder's standing (RULES.md "Credentials
and standing"): the holder's current card counts only for what is the holder's (expiry, validity,
cancellation, spend-only, a frozen balance); a lost or replaced card voids itself, not the face
or the phone. A code that failed its verification (:class:`~models.qr.QrFault`) is refused with
the reason it failed.
"""

from dataclasses import dataclass, field
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
    PresentedCard,
)
from models.decision import Alert, Decision
from models.qr import QrCredential, QrFault
from models.reasons import Reason

# docs/card-profile.md: the class byte of the public file, as most sites number their classes.
DEFAULT_CLASS_CODES: tuple[tuple[int, str], ...] = (
    (1, "gold"),
    (2, "red"),
    (3, "blue"),
    (4, "green"),
    (5, "temporary"),
)


@dataclass(frozen=True, slots=True)
class SiteCards:
    """What this site's cards must say about themselves: who issued them, what the class byte
    means. ``issuers`` empty: not checked (simulated readers, UID mode carry no issuer)."""

    issuers: frozenset[str] = frozenset()
    class_codes: tuple[tuple[int, str], ...] = field(default=DEFAULT_CLASS_CODES)

    def class_name(self, code: int) -> str | None:
        return dict(self.class_codes).get(code)


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
    """A credential that passed: whose it is, the card it stands on (``None`` for a face whose
    holder has no usable card), and whether it may only spend its balance."""

    card: Card | None
    holder: Holder
    spend_only: bool

    @property
    def card_number(self) -> str | None:
        return None if self.card is None else self.card.number


def _outside(today: date, start: date | None, end: date | None) -> Reason | None:
    if start is not None and today < start:
        return Reason.CARD_NOT_YET_VALID
    if end is not None and today > end:
        return Reason.CARD_EXPIRED
    return None


def credential_by_uid(credential: Credential) -> bool:
    """A card read in legacy UID mode: identified by its clonable chip UID alone."""
    return isinstance(credential, PresentedCard) and credential.genuine is Genuineness.UID_ONLY


def credential_kind(credential: Credential) -> str:
    """What the journal's ``credential`` field says of it (before a card + face check)."""
    if isinstance(credential, FaceCredential):
        return "face"
    if isinstance(credential, QrCredential | QrFault):
        return "qr"
    # Nothing proved a UID-mode read genuine: the journal must not say a card was checked.
    return "uid" if credential_by_uid(credential) else "card"


def check_credential(
    credential: Credential,
    card: Card | None,
    holder: Holder | None,
    newest_issue_seq: int | None,
    today: date,
    *,
    for_payment: bool,
    site: SiteCards | None = None,
) -> Checked | Decision:
    """The credential's holder if every check passes, else the denial (with any alert)."""
    if isinstance(credential, FaceCredential):
        return _check_face(
            credential, card, holder, newest_issue_seq, today, for_payment=for_payment
        )
    if isinstance(credential, QrCredential):
        return _check_standing(
            credential.holder_id, card, holder, newest_issue_seq, today, for_payment=for_payment
        )
    if isinstance(credential, QrFault):
        # No security event: a code that fails is mostly a stale screenshot or a phone whose key
        # was revoked, and a forged one names nobody it could be raised for (docs/qr.md).
        return Decision.deny(
            credential.reason, holder_id=credential.holder_id, detail=credential.detail
        )
    if isinstance(credential, CardFault):
        return Decision.deny(
            credential.reason, card_number=credential.number, detail=credential.detail
        )
    return _check_card(
        credential,
        card,
        holder,
        newest_issue_seq,
        today,
        for_payment=for_payment,
        site=site or SiteCards(),
    )


def _check_card(
    credential: PresentedCard,
    card: Card | None,
    holder: Holder | None,
    newest_issue_seq: int | None,
    today: date,
    *,
    for_payment: bool,
    site: SiteCards,
) -> Checked | Decision:
    issuer = credential.issuer_id
    if issuer is not None and site.issuers and issuer not in site.issuers:
        # Before the genuine-card check: another issuer's card fails our key diversification
        # too, and it is a stranger's card, not a clone.
        return Decision.deny(
            Reason.CARD_ISSUER_UNKNOWN,
            card_number=credential.number,
            detail=f"issuer {issuer} is not this site's",
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
    if credential.class_code is not None:
        named = site.class_name(credential.class_code)
        if named != card.card_class:
            return Decision.deny(
                Reason.CARD_CLASS_MISMATCH,
                holder_id=holder_id,
                card_number=number,
                detail=f"card says class code {credential.class_code} ({named or 'undefined'}), "
                f"registry has {card.card_class}",
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
    if holder is None:
        return Decision.deny(Reason.HOLDER_UNKNOWN, holder_id=holder_id, card_number=number)
    return _check_holder(card, holder, today, for_payment=for_payment)


def _check_holder(
    card: Card | None, holder: Holder, today: date, *, for_payment: bool
) -> Checked | Decision:
    """The holder's standing, after the card's checks: active, within their period."""
    number, holder_id = (None if card is None else card.number), holder.id
    card_spend_only = card is not None and card.status is CardStatus.SPEND_ONLY
    spend_only = card_spend_only or holder.status is HolderStatus.SPEND_ONLY
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


# A card status that is its holder's standing, not the plastic's: it stops a face too.
_STANDING: dict[CardStatus, Reason] = {
    CardStatus.CANCELLED: Reason.CARD_CANCELLED,
    CardStatus.EXPIRED: Reason.CARD_EXPIRED,
}


def _check_face(
    credential: FaceCredential,
    card: Card | None,
    holder: Holder | None,
    newest_issue_seq: int | None,
    today: date,
    *,
    for_payment: bool,
) -> Checked | Decision:
    """A recognised face, judged on its holder's standing; ``card`` is the holder's newest.

    No card security event here: nobody presented a lost or replaced card, its holder stood at
    the camera. A face that failed liveness is the security event (a photo held up).
    """
    if not credential.live:
        detail = "face not_live"
        if credential.threshold_milli is not None:
            score, threshold = credential.score_milli / 1000, credential.threshold_milli / 1000
            detail += f", score {score:.3f} >= {threshold:.3f}"
        return Decision.deny(
            Reason.FACE_NOT_LIVE,
            holder_id=credential.holder_id,
            card_number=None if card is None else card.number,
            alert=Alert.FACE_SPOOF,
            detail=detail,
        )
    return _check_standing(
        credential.holder_id, card, holder, newest_issue_seq, today, for_payment=for_payment
    )


def _check_standing(
    holder_id: str,
    card: Card | None,
    holder: Holder | None,
    newest_issue_seq: int | None,
    today: date,
    *,
    for_payment: bool,
) -> Checked | Decision:
    """A credential that names a holder (a face, a code): the holder's standing, and of their
    newest card (``card``) only what is the holder's."""
    if holder is None or holder.id != holder_id:
        return Decision.deny(Reason.HOLDER_UNKNOWN, holder_id=holder_id)
    standing = card
    if card is not None and (
        card.holder_id != holder_id
        or card.status in (CardStatus.LOST, CardStatus.REPLACED)
        or (newest_issue_seq is not None and card.issue_seq < newest_issue_seq)
    ):
        standing = None  # the card is void; the face still names its holder
    if standing is not None:
        number = standing.number
        reason = _STANDING.get(standing.status)
        if reason is None and standing.status is CardStatus.FROZEN and for_payment:
            reason = Reason.CARD_FROZEN  # the balance waits for its transfer; doors do not
        if reason is None and standing.status is CardStatus.SPEND_ONLY and not for_payment:
            reason = Reason.CARD_SPEND_ONLY
        if reason is None:
            reason = _outside(today, standing.valid_from, standing.valid_until)
        if reason is not None:
            return Decision.deny(reason, holder_id=holder_id, card_number=number)
    return _check_holder(standing, holder, today, for_payment=for_payment)
