"""The outcome of ``decide()``: complete, so that nothing after it decides anything.

A decision says allow or deny and why, the security event it raises, what it does (the payment
or refund, the PIN attempt to count, what the gate does) and what the journal records about it
(the credential, the face score, who authorised it). Or it says what is still missing: a
:class:`Need` the flow satisfies (ask for the PIN, show the camera, ...) before it calls
``decide()`` again with the answer. A decision with a need is never journalled.
"""

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
    PIN_LOCKED = "pin_locked"  # the wrong PIN that locked the account's PIN
    REMOTE_OPEN = "remote_open"  # HQ opened the door without a credential


class Need(StrEnum):
    """What ``decide()`` needs before it can give a final answer."""

    AMOUNT = "amount"  # a cashier-priced sale: the amount first (the tap is not recorded)
    FACE = "face"  # card + face: the holder's face at the camera (1:1)
    PAY_CONFIRM = "pay_confirm"  # face pay: the customer confirms the name and amount
    DUPLICATE_CONFIRM = "duplicate_confirm"  # the same card just paid here: pay again?
    PIN = "pin"  # above the password-free amount


class GateAction(StrEnum):
    """What the door does after the decision is durable."""

    NONE = "none"  # stays shut
    OPEN = "open"  # released for one passage, then the passage is recorded
    RELEASED = "released"  # already standing open (free passage): nothing to operate


Detail = tuple[tuple[str, int | str], ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow or deny, why, what follows from it and what the journal records."""

    allowed: bool
    reason: Reason
    holder_id: str | None = None
    card_number: str | None = None
    alert: Alert | None = None
    detail: str = ""
    payment: Payment | None = None  # allowed: what is paid (or refunded); with a need: a preview
    need: Need | None = None
    credential: str = "card"  # journal field: card, uid (legacy UID mode), face, card+face, remote
    face_score: int | None = None
    event: Detail = ()  # what the security event says besides the reason and detail
    gate: GateAction = GateAction.NONE
    pin_attempt: bool | None = None  # a PIN was checked in this decision: right or wrong
    authorised_by: str | None = None
    used: bool | None = None  # a passage record: did somebody pass

    @property
    def final(self) -> bool:
        """Whether this is the answer (journalled), not a question for the flow."""
        return self.need is None

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

    @classmethod
    def asking(
        cls,
        need: Need,
        reason: Reason,
        *,
        holder_id: str | None = None,
        card_number: str | None = None,
        payment: Payment | None = None,
    ) -> "Decision":
        return cls(False, reason, holder_id, card_number, payment=payment, need=need)
