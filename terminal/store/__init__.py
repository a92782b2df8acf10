"""SQLite persistence: the only package that imports sqlite3."""

from terminal.store.journal import Committed, SecurityEvent
from terminal.store.pos import Charged, Effect, PassageUsed, PinOutcome, Refunded
from terminal.store.store import Store

__all__ = [
    "Charged",
    "Committed",
    "Effect",
    "PassageUsed",
    "PinOutcome",
    "Refunded",
    "SecurityEvent",
    "Store",
]
