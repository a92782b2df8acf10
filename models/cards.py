"""Holders, cards and what a reader saw when a card was presented."""

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from models.qr import QrCredential, QrFault
from models.reasons import Reason


class CardStatus(StrEnum):
    """Card lifecycle statuses the card office sets (RULES.md). "Unlost" is a return to active."""

    ACTIVE = "active"
    LOST = "lost"
    REPLACED = "replaced"
    FROZEN = "frozen"
    EXPIRED = "expired"
    SPEND_ONLY = "spend_only"
    CANCELLED = "cancelled"


class HolderStatus(StrEnum):
    """Whether a holder may use the site at all; cards carry the finer lifecycle."""

    ACTIVE = "active"
    SPEND_ONLY = "spend_only"
    INACTIVE = "inactive"


class Genuineness(StrEnum):
    """Outcome of the reader's genuine-card check."""

    GENUINE = "genuine"
    NOT_GENUINE = "not_genuine"
    UNCHECKED = "unchecked"  # a simulated reader, or a number typed in: nothing was proven
    UID_ONLY = "uid_only"  # legacy UID mode: the chip's UID, which anyone can copy to a chip


@dataclass(frozen=True, slots=True)
class Holder:
    """A person registered at the card office, as far as the terminal needs to know."""

    id: str
    name: str
    card_class: str
    status: HolderStatus = HolderStatus.ACTIVE
    valid_from: date | None = None
    valid_until: date | None = None
    require_face: bool = False
    spend_only_until: date | None = None
    services: frozenset[str] = frozenset()
    canteens: frozenset[str] = frozenset()
    pin_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Card:
    """A card as the allowlist (HQ) knows it. HQ's word on status and validity is final."""

    number: str
    holder_id: str
    issue_seq: int
    card_class: str
    status: CardStatus = CardStatus.ACTIVE
    valid_from: date | None = None
    valid_until: date | None = None


@dataclass(frozen=True, slots=True)
class PresentedCard:
    """What the reader decoded from a card in the field.

    Fields the reader could not read (UID mode, simulated readers) are ``None``.
    """

    number: str
    genuine: Genuineness = Genuineness.UNCHECKED
    issue_seq: int | None = None
    class_code: int | None = None
    valid_from: date | None = None
    valid_until: date | None = None
    issuer_id: str | None = None  # 16 hex digits, upper case


@dataclass(frozen=True, slots=True)
class CardFault:
    """A card was in the field but could not be turned into a credential."""

    reason: Reason
    detail: str = ""
    number: str | None = None


@dataclass(frozen=True, slots=True)
class FaceCredential:
    """A face the terminal recognised among the enrolled holders (1:N).

    It names a holder, not a card: the rules judge it on the holder's standing (RULES.md
    "Credentials and standing"): a lost or replaced card voids that card, not its holder's face,
    while expiry, cancellation and spend-only stop the face too (docs/rules.md). ``live`` is
    False when the face matched but failed the liveness check (a photo, a screen).
    ``score_milli`` is the cosine score in thousandths: journal records carry integers only.
    """

    holder_id: str
    score_milli: int
    live: bool = True
    threshold_milli: int | None = None

    @property
    def number(self) -> None:
        """A face carries no card number; code that asks any credential for one gets ``None``."""
        return None


# What a card reader produces: a card it read, or a card it could not turn into a credential.
CardCredential = PresentedCard | CardFault
# Everything the rules accept as a credential: a code shown to the terminal is verified first
# (models.qr), into a credential naming its holder or a fault saying why not.
Credential = PresentedCard | CardFault | FaceCredential | QrCredential | QrFault


def held_key(credential: Credential) -> str:
    """What identifies "the same presentation" while it lasts: a card held on the reader, or the
    same person still standing at the camera, is not a second tap."""
    if isinstance(credential, FaceCredential):
        return f"face:{credential.holder_id}"
    if isinstance(credential, QrCredential):
        return f"qr:{credential.holder_id}:{credential.nonce}"
    if isinstance(credential, QrFault):
        return f"qr-fault:{credential.reason}:{credential.detail}"
    if isinstance(credential, CardFault):
        return f"fault:{credential.number or credential.reason}"
    return credential.number


def mask_card_number(number: str) -> str:
    """Show only what a technician needs to tell cards apart: ``1234************5678``."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]
