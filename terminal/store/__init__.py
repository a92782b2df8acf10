"""SQLite persistence: the only package that imports sqlite3."""

from terminal.store.journal import Committed, SecurityEvent
from terminal.store.pos import (
    AwaitingPassage,
    Charged,
    Effect,
    PassageSettled,
    PassageUsed,
    PinOutcome,
    Refunded,
)
from terminal.store.qr import QrNonceSpent
from terminal.store.store import Store

__all__ = [
    "AwaitingPassage",
    "Charged",
    "Committed",
    "Effect",
    "PassageSettled",
    "PassageUsed",
    "PinOutcome",
    "QrNonceSpent",
    "Refunded",
    "SecurityEvent",
    "Store",
]
