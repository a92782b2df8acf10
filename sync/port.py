"""The narrow interface between the sync engine and the terminal's store.

``sync`` never touches SQLite; the terminal implements :class:`SyncPort` (``terminal.store.
sync_port``) and the tests use the same implementation on a temporary database. Every method that
changes something is one durable transaction when it returns, which is what lets the link
acknowledge an inbound MQTT message right after the call.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from sync.changes import Change, DenyEntry


class BatchOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # entirely at or below the applied seq
    GAP = "gap"  # starts above applied + 1: nothing kept, resync


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    issued: str
    expires: str


@dataclass(frozen=True, slots=True)
class Marks:
    """The persisted high-water marks of the link."""

    change_seq: int = 0
    head: Head | None = None
    snapshot_id: str | None = None
    tx_acked: int = 0
    journal_epoch: str = ""  # which journal the tx seqs count in ("" for one from before epochs)


@dataclass(frozen=True, slots=True)
class PurseBalance:
    """A snapshot line: an account's purse balance as of the snapshot's seq."""

    account: str
    purse: str
    balance: int
    expires: str | None


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: int
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OutboxStats:
    tx_backlog: int
    event_backlog: int
    oldest_queued_at: str | None
    last_tx_seq: int
    last_tx_hash: str | None = None  # the journal's tip, which the signed status anchors


class SnapshotStage(Protocol):
    """A snapshot being assembled away from the live data; nothing is visible before commit."""

    def add(self, items: Sequence[Change | PurseBalance]) -> None: ...

    def commit(self, *, seq: int, snap_id: str, tx_through: int) -> None:
        """Swap the staged data in, atomically; this terminal's debits ≤ ``tx_through`` are in
        the snapshot's balances, so they stop being pending."""
        ...

    def discard(self) -> None: ...


class SyncPort(Protocol):
    def marks(self) -> Marks: ...

    def apply_batch(self, first: int, last: int, changes: Sequence[Change]) -> BatchOutcome:
        """Apply the entries above the applied seq and move it to ``last``, in one transaction;
        or nothing at all for a duplicate or a gap."""
        ...

    def apply_deny(self, seq: int, entries: Sequence[DenyEntry]) -> int:
        """Set each card's status unless the card already reflects a change at or after
        ``seq``; returns how many cards changed."""
        ...

    def accept_head(self, head: Head) -> bool:
        """Persist ``head`` unless it is older than the accepted one (then ``False``)."""
        ...

    def keyset(self) -> bytes | None:
        """The newest HQ keyset statement accepted (``sync.keyset``), as received."""
        ...

    def save_keyset(self, payload: bytes, version: int) -> None:
        """Keep ``payload`` as the keyset in use (verified by the caller, and newer)."""
        ...

    def snapshot_wanted(self) -> bool:
        """Data the terminal dropped under an earlier configuration is wanted again: only a
        whole snapshot brings it back, even at the seq the terminal has."""
        ...

    def begin_snapshot(self, snap_id: str, seq: int) -> SnapshotStage: ...

    def tx_records(self, after: int, limit: int) -> list[dict[str, Any]]:
        """Journal records with seq > ``after`` still in the outbox, in seq order."""
        ...

    def mark_tx_sent(self, first: int, last: int, at: str) -> None: ...

    def ack_tx(self, through: int) -> int:
        """HQ durably has every record ≤ ``through``: drop them from the outbox, but none that
        was never sent (``marks().tx_acked`` then says how far the ack really went)."""
        ...

    def salvaged_due(self, limit: int, sent_before: str) -> list[dict[str, Any]]:
        """Records of an earlier journal read back from a quarantined file, not sent since
        ``sent_before``."""
        ...

    def mark_salvaged_sent(self, records: Sequence[Mapping[str, Any]], at: str) -> None: ...

    def drop_salvaged(self, epoch: str, seqs: Sequence[int]) -> int:
        """Forget the salvaged records HQ now holds; returns how many went."""
        ...

    def events_due(self, limit: int, sent_before: str) -> list[OutboxEvent]:
        """Queued events never sent or last sent before ``sent_before``."""
        ...

    def mark_events_sent(self, ids: Sequence[int], at: str) -> None: ...

    def ack_events(self, ids: Sequence[int]) -> int: ...

    def claim_command(self, cmd_id: str, name: str, at: str) -> bool:
        """Record ``cmd_id`` as executed; ``False`` if it already was (at most once)."""
        ...

    def finish_command(self, cmd_id: str, outcome: str) -> None: ...

    def outbox_stats(self) -> OutboxStats: ...

    def quarantined(self) -> list[str]:
        """Database files set aside as unreadable: the journal started again since them."""
        ...
