"""SQLite persistence: the only package that imports sqlite3."""

from terminal.store.journal import Committed, SecurityEvent
from terminal.store.store import Store

__all__ = ["Committed", "SecurityEvent", "Store"]
