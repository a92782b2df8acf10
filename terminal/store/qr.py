"""The electronic card's side of the store: a holder's QR public keys, and the nonces of the codes
accepted here (the replay cache).

The keys live in ``holders.qr_keys`` as HQ's ``holder.upsert`` (or a snapshot) last listed them,
so a key HQ stops listing is gone with that change, and a holder's deletion takes them along.
A nonce is written by the commit that journals the accepted code (:class:`QrNonceSpent`, an
effect of that transaction): either both are durable or neither, and a code that opened the gate
before a power cut is still spent after it.
"""

import json
import logging
import sqlite3
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class QrNonceSpent:
    """An accepted code's nonce, kept until ``keep_until`` (unix seconds); ``now`` (unix
    seconds) lets the same transaction drop the nonces whose codes have expired anyway."""

    holder_id: str
    nonce: str
    keep_until: int
    now: int


def qr_keys(conn: sqlite3.Connection, holder_id: str) -> dict[str, str]:
    """Key id -> base64 public key; empty for a holder with none, or none known."""
    row = conn.execute("SELECT qr_keys FROM holders WHERE id = ?", (holder_id,)).fetchone()
    if row is None:
        return {}
    try:
        listed = json.loads(row[0])
        return {str(entry["k"]): str(entry["pub"]) for entry in listed}
    except (ValueError, TypeError, KeyError):
        # Only sync writes the column, from a parsed holder.upsert; if it is unreadable anyway,
        # the holder's codes are refused (unknown key) rather than the tap path failing.
        logger.error("holder %s: QR keys unreadable, their codes are refused", holder_id)
        return {}


def nonce_seen(conn: sqlite3.Connection, holder_id: str, nonce: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM qr_nonces WHERE holder_id = ? AND nonce = ?", (holder_id, nonce)
    ).fetchone()
    return row is not None


def spend(conn: sqlite3.Connection, effect: QrNonceSpent) -> None:
    """Keep the nonce; a nonce already kept fails the whole transaction (no record, no gate):
    the tap path checked it just before, so only a second writer could have spent it."""
    conn.execute("DELETE FROM qr_nonces WHERE keep_until < ?", (effect.now,))
    try:
        conn.execute(
            "INSERT INTO qr_nonces (holder_id, nonce, keep_until) VALUES (?, ?, ?)",
            (effect.holder_id, effect.nonce, effect.keep_until),
        )
    except sqlite3.IntegrityError:
        raise sqlite3.IntegrityError("this electronic-card code was already used") from None
