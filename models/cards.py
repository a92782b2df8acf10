"""Holders, cards and what a reader saw when a card was presented."""

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

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
    UNCHECKED = "unchecked"  # legacy UID mode or a simulated reader: nothing was proven


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


@dataclass(frozen=True, slots=True)
class CardFault:
    """A card was in the field but could not be turned into a credential."""

    reason: Reason
    detail: str = ""
    number: str | None = None


Credential = PresentedCard | CardFault


def mask_card_number(number: str) -> str:
    """Show only what a technician needs to tell cards apart: ``1234************5678``."""
    if len(number) <= 8:
        return "*" * len(number)
    return number[:4] + "*" * (len(number) - 8) + number[-4:]
