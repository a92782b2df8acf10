"""The domain, pure: types, rules and ``decide()``. No I/O, no clock, no other project package."""

from models.cards import (
    Card,
    CardCredential,
    CardFault,
    CardStatus,
    Credential,
    FaceCredential,
    Genuineness,
    Holder,
    HolderStatus,
    PresentedCard,
    mask_card_number,
)
from models.decide import decide
from models.decision import Alert, Decision
from models.door import DoorRequest, DoorView
from models.money import Fen
from models.reasons import Reason
from models.schedule import HOLIDAY, AccessGroup, Calendar, TimeWindow

__all__ = [
    "HOLIDAY",
    "AccessGroup",
    "Alert",
    "Calendar",
    "Card",
    "CardCredential",
    "CardFault",
    "CardStatus",
    "Credential",
    "Decision",
    "DoorRequest",
    "DoorView",
    "FaceCredential",
    "Fen",
    "Genuineness",
    "Holder",
    "HolderStatus",
    "PresentedCard",
    "Reason",
    "TimeWindow",
    "decide",
    "mask_card_number",
]
