"""The outcome of ``decide()``."""

from dataclasses import dataclass
from enum import StrEnum

from models.reasons import Reason
from models.wallet import Payment


class Alert(StrEnum):
    """Security events a decision raises (RULES.md "Security events")."""

    LOST_CARD_USED = "lost_card_used"
    REPLACED_CARD_USED = "replaced_card_used"
    CANCELLED_CARD_USED = "cancelled_card_used"
    CLONED_CARD = "cloned_card"
    ANTI_PASSBACK = "anti_passback"
    CARD_LENDING = "card_lending"  # card + face: someone else's face with the card (不得转借)
    FACE_SPOOF = "face_spoof"  # a matching face failed the liveness check


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow or deny, why, and whether security must hear about it."""

    allowed: bool
    reason: Reason
    holder_id: str | None = None
    card_number: str | None = None
    alert: Alert | None = None
    detail: str = ""
    payment: Payment | None = None

    @classmethod
    def deny(
        cls,
        reason: Reason,
        *,
        holder_id: str | None = None,
        card_number: str | None = None,
        alert: Alert | None = None,
        detail: str = "",
    ) -> "Decision":
        return cls(False, reason, holder_id, card_number, alert, detail)
