"""Whether HQ may credit a terminal's correction: only what a payment it holds left to give back.

A terminal's signature proves which terminal sent a record, not that the money it names is
owed: a door terminal once credited 50,000 yuan by sending a correction of a transaction that
never existed. So HQ credits a correction only when it refers to an allowed payment **of the
same terminal** (its own journal is all a terminal's correction can know), **for the same
account**, and asks per purse no more than that payment paid minus what earlier corrections of
it gave back (a work meal therefore comes back once). A refused correction stays stored as the
terminal's record; the refusal is an alarm, and no part of it moves money.

The check reads the whole correction record, not just the purse being posted, so every part of
one correction gets the same answer: none of it is credited when any part is wrong.
"""

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from models.errors import SyncError

PAYMENT_KINDS = frozenset({"meal", "shop", "barber"})


class CorrectionError(SyncError):
    """A correction HQ does not credit; the message says why (it goes into the alarm)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"correction refused: {why}")


def _records(conn: sqlite3.Connection, tid: str, tx_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT record FROM tx WHERE tid = ? AND id = ?", (tid, tx_id))
    return [json.loads(text) for (text,) in rows.fetchall()]


def _parts(record: Mapping[str, Any]) -> dict[str, int]:
    """Positive amounts per purse, as intake posts them; a purse named twice is refused (its
    second posting would collide with the first in the ledger)."""
    parts: dict[str, int] = {}
    split = record.get("split")
    for part in split if isinstance(split, list) else []:
        amount = part.get("amount") if isinstance(part, dict) else None
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            continue
        purse = str(part.get("purse"))
        if purse in parts:
            raise CorrectionError(f"purse {purse} named twice")
        parts[purse] = amount
    return parts


def _given_back(conn: sqlite3.Connection, tid: str, payment_id: str, own_id: str) -> dict[str, int]:
    """What corrections of ``payment_id`` other than ``own_id`` were credited, per purse."""
    rows = conn.execute(
        "SELECT purse, sum(delta) FROM ledger WHERE reason = 'correction' AND origin_tid = ? "
        "AND origin_tx_id != ? AND origin_tx_id IN (SELECT id FROM tx WHERE tid = ? "
        "AND json_extract(record, '$.corrects') = ?) GROUP BY purse",
        (tid, own_id, tid, payment_id),
    )
    return {str(purse): int(total) for purse, total in rows.fetchall()}


def check_correction(conn: sqlite3.Connection, account: str, origin: Mapping[str, Any]) -> None:
    """Raise :class:`CorrectionError` unless the correction ``origin`` names may be credited
    to ``account``. Inside the caller's transaction, before anything of it is posted."""
    tid, tx_id = str(origin["tid"]), str(origin["tx_id"])
    held = _records(conn, tid, tx_id)
    if len(held) != 1:
        # The same id at another seq: a record posted once must not be posted again as new.
        raise CorrectionError(f"record id {tx_id} is already posted by another record")
    record = held[0]
    if record.get("kind") != "correction" or record.get("holder_id") != account:
        raise CorrectionError(f"record {tx_id} is not a correction for account {account}")
    payment_id = record.get("corrects")
    if not isinstance(payment_id, str):
        raise CorrectionError("it names no payment")
    payments = _records(conn, tid, payment_id)
    if len(payments) != 1:
        raise CorrectionError(f"no payment {payment_id} from terminal {tid}")
    payment = payments[0]
    if payment.get("kind") not in PAYMENT_KINDS or payment.get("decision") != "allow":
        raise CorrectionError(f"no payment {payment_id} from terminal {tid}")
    if payment.get("holder_id") != account:
        raise CorrectionError(f"payment {payment_id} was not paid by account {account}")
    paid = _parts(payment)
    given = _given_back(conn, tid, payment_id, tx_id)
    for purse, amount in _parts(record).items():
        left = paid.get(purse, 0) - given.get(purse, 0)
        if amount > left:
            raise CorrectionError(
                f"asks {amount} from {purse}, {max(left, 0)} left of payment {payment_id}"
            )
