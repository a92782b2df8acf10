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
from models.credential import SiteCards
from models.decide import decide
from models.decision import Alert, Decision, GateAction, Need
from models.door import DoorMode, DoorRequest, DoorView, FacePolicy
from models.face import FaceEvidence, FaceOutcome
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
    "DoorMode",
    "DoorRequest",
    "DoorView",
    "FaceCredential",
    "FaceEvidence",
    "FaceOutcome",
    "FacePolicy",
    "Fen",
    "GateAction",
    "Genuineness",
    "Holder",
    "HolderStatus",
    "Need",
    "PresentedCard",
    "Reason",
    "SiteCards",
    "TimeWindow",
    "decide",
    "mask_card_number",
]
