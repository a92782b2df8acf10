"""Transaction records and the hash chain that makes the journal tamper-evident.

A record is the dict uploaded to HQ (PROTOCOL.md "transaction record"); ``hash`` is the SHA-256 of
its canonical JSON without ``hash``, and ``prev_hash`` links it to the record before, so editing or
deleting any committed record breaks every later link.

Seqs count within one journal **epoch**: a journal that has to start again (a damaged database
replaced by an empty one) starts a new epoch, so its seq 1 is never taken for the old seq 1.

A door decision is committed before the gate opens, so whether someone then actually passed is
not known yet; it is appended later as a ``passage`` record that references the door record
(``ref``), instead of editing a sealed record.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from models.canonical import ZERO_HASH, record_hash
from models.reasons import Reason


@dataclass(frozen=True, slots=True)
class TransactionDraft:
    """Everything about a transaction except its place in the journal."""

    kind: str
    at: str
    mono_ns: int
    credential: str
    decision: str
    reason: Reason
    view_seq: int
    card: str | None = None
    holder_id: str | None = None
    door: str | None = None
    direction: str | None = None
    amount: int | None = None
    split: tuple[tuple[str, int], ...] = ()
    face_score: int | None = None
    used: bool | None = None
    corrects: str | None = None
    ref: str | None = None
    authorised_by: str | None = None

    def __post_init__(self) -> None:
        if self.decision not in ("allow", "deny"):
            raise ValueError(f"decision must be allow or deny, got {self.decision!r}")


_OPTIONAL = (
    "card",
    "holder_id",
    "door",
    "direction",
    "amount",
    "face_score",
    "used",
    "corrects",
    "ref",
    "authorised_by",
)


def seal(
    draft: TransactionDraft, *, seq: int, tx_id: str, prev_hash: str, epoch: str = ""
) -> dict[str, Any]:
    """The record for ``draft`` at journal position ``seq``, with its ``hash`` filled in.

    ``epoch`` names the journal (a random id given when it started); a journal from before
    epochs has the empty one, and its records carry no ``epoch`` field.
    """
    record: dict[str, Any] = {
        "seq": seq,
        "id": tx_id,
        "prev_hash": prev_hash,
        "kind": draft.kind,
        "at": draft.at,
        "mono_ns": draft.mono_ns,
        "credential": draft.credential,
        "split": [{"purse": purse, "amount": amount} for purse, amount in draft.split],
        "decision": draft.decision,
        "reason": str(draft.reason),
        "view_seq": draft.view_seq,
    }
    for name in _OPTIONAL:
        value = getattr(draft, name)
        if value is not None:
            record[name] = value
    if epoch:
        record["epoch"] = epoch
    record["hash"] = record_hash(record)
    return record


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """Where and why a chain stopped verifying."""

    seq: int
    why: str


def verify_chain(
    records: Iterable[Mapping[str, Any]], *, prev_hash: str = ZERO_HASH, prev_seq: int = 0
) -> ChainBreak | None:
    """Check records in seq order continue the chain from ``prev_hash``/``prev_seq``.

    Returns the first break, or ``None`` when every record verifies.
    """
    for record in records:
        seq = record.get("seq")
        if not isinstance(seq, int) or seq != prev_seq + 1:
            return ChainBreak(prev_seq + 1, f"expected seq {prev_seq + 1}, found {seq!r}")
        if record.get("prev_hash") != prev_hash:
            return ChainBreak(seq, "prev_hash does not match the previous record")
        if record.get("hash") != record_hash(record):
            return ChainBreak(seq, "hash does not match the record's content")
        prev_hash, prev_seq = record["hash"], seq
    return None
