"""The POS side of the store: views for payments and corrections, and what a commit changes.

Everything a payment changes besides the journal (pending debits, the day's spending, the last
charge of the card, PIN failures, refunds) is an *effect* applied inside the same transaction as
the journal record, so a power cut leaves either all of it or none.
"""

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time

from models.cards import Card, Holder, HolderStatus
from models.correction import CorrectionView, OriginalPayment
from models.pos import Merchant, PosPolicy, PosView
from models.rules import RuleSet, parse_rules
from models.wallet import MONEY_PURSES, Purse, PurseState, Service
from terminal.clock import rfc3339
from terminal.store.allowlist import current_card, find_card
from terminal.store.journal import Committed
from terminal.store.qr import QrNonceSpent, spend

_HOLDER = (
    "SELECT id, name, card_class, status, valid_from, valid_until, require_face, "
    "spend_only_until, services, canteens, pin_hash FROM holders WHERE id = ?"
)
_MONEY = tuple(str(p) for p in MONEY_PURSES)


def _date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


def load_holder(conn: sqlite3.Connection, holder_id: str) -> Holder | None:
    row = conn.execute(_HOLDER, (holder_id,)).fetchone()
    if row is None:
        return None
    return Holder(
        id=row[0],
        name=row[1],
        card_class=row[2],
        status=HolderStatus(row[3]),
        valid_from=_date(row[4]),
        valid_until=_date(row[5]),
        require_face=bool(row[6]),
        spend_only_until=_date(row[7]),
        services=frozenset(json.loads(row[8])),
        canteens=frozenset(json.loads(row[9])),
        pin_hash=row[10],
    )


def load_rules(conn: sqlite3.Connection) -> tuple[RuleSet, list[str]]:
    rows = []
    errors = []
    for rule_id, kind, body in conn.execute("SELECT id, type, body FROM rules"):
        try:
            rows.append((rule_id, kind, json.loads(body)))
        except json.JSONDecodeError as exc:
            errors.append(f"rule {rule_id} ({kind}): body is not JSON: {exc}")
    rules, more = parse_rules(rows)
    return rules, errors + more


def _day_start_utc(now: datetime) -> str:
    return rfc3339(datetime.combine(now.date(), time(0), tzinfo=now.tzinfo))


def _purses(conn: sqlite3.Connection, account: str) -> tuple[PurseState, ...]:
    pending = dict(
        conn.execute(
            "SELECT purse, sum(amount) FROM pending_debits WHERE account = ? GROUP BY purse",
            (account,),
        ).fetchall()
    )
    return tuple(
        PurseState(Purse(purse), balance, int(pending.get(purse, 0)), _date(expires))
        for purse, balance, expires in conn.execute(
            "SELECT purse, balance, expires FROM purses WHERE account = ?", (account,)
        )
    )


def usage_keys(card: Card | None, holder_id: str) -> tuple[str, ...]:
    """What a face's uses may be remembered under: the holder's card, or the holder when the
    face passed without a usable card (terminal/flows/record.py ``usage_key``)."""
    holder_key = f"holder:{holder_id}"
    return (holder_key,) if card is None else (card.number, holder_key)


def _usage(
    conn: sqlite3.Connection, keys: Sequence[str]
) -> tuple[datetime | None, datetime | None, str | None]:
    """The latest charge and the latest passage (with its direction) under any of ``keys``."""
    charge: datetime | None = None
    passage: tuple[datetime, str] | None = None
    for key in keys:
        row = conn.execute(
            "SELECT last_charge_at, last_passage_at, last_direction FROM card_usage WHERE card = ?",
            (key,),
        ).fetchone()
        if row is None:
            continue
        if row[0] is not None:
            charged = datetime.fromisoformat(row[0])
            charge = charged if charge is None or charged > charge else charge
        if row[1] is not None and row[2] is not None:
            passed = datetime.fromisoformat(row[1])
            passage = (passed, row[2]) if passage is None or passed > passage[0] else passage
    return charge, None if passage is None else passage[0], None if passage is None else passage[1]


def last_passage(conn: sqlite3.Connection, keys: Sequence[str]) -> tuple[str, datetime] | None:
    _, at, direction = _usage(conn, keys)
    return None if at is None or direction is None else (direction, at)


@dataclass(frozen=True, slots=True)
class Till:
    """Where a payment view is read for: the merchant, its rules and policy, when."""

    merchant: Merchant
    rules: RuleSet
    policy: PosPolicy
    now: datetime
    view_seq: int
    degraded: bool


def load_pos_view(conn: sqlite3.Connection, number: str, till: Till) -> PosView:
    card = find_card(conn, number)
    if card is None:
        return PosView(
            view_seq=till.view_seq,
            merchant=till.merchant,
            policy=till.policy,
            degraded=till.degraded,
        )
    return _account_view(conn, card.holder_id, card, (card.number,), till)


def load_pos_view_for_holder(conn: sqlite3.Connection, holder_id: str, till: Till) -> PosView:
    """The view for a recognised face: the holder's account pays, whatever became of a card."""
    card = current_card(conn, holder_id)
    return _account_view(conn, holder_id, card, usage_keys(card, holder_id), till)


def _account_view(
    conn: sqlite3.Connection, account: str, card: Card | None, usage: Sequence[str], till: Till
) -> PosView:
    merchant, rules, policy, now = till.merchant, till.rules, till.policy, till.now
    view_seq, degraded = till.view_seq, till.degraded
    holder = load_holder(conn, account)
    newest = conn.execute(
        "SELECT max(issue_seq) FROM cards WHERE holder_id = ?", (account,)
    ).fetchone()[0]
    day = conn.execute(
        "SELECT spent, subsidised FROM account_day WHERE account = ? AND day = ?",
        (account, now.date().isoformat()),
    ).fetchone()
    spent, subsidised = (0, "[]") if day is None else day
    pin = conn.execute("SELECT failures FROM pin_state WHERE account = ?", (account,)).fetchone()
    marks = ",".join("?" * len(_MONEY))
    pending_card_today = conn.execute(
        f"SELECT coalesce(sum(amount), 0) FROM pending_debits WHERE account = ? AND at >= ? "
        f"AND purse IN ({marks})",
        (account, _day_start_utc(now), *_MONEY),
    ).fetchone()[0]
    pending_terminal = conn.execute("SELECT amount FROM pending_total WHERE id = 1").fetchone()[0]
    last_charge, _, _ = _usage(conn, usage)
    card_class = holder.card_class if holder else (card.card_class if card else "")
    return PosView(
        view_seq=view_seq,
        merchant=merchant,
        policy=policy,
        card=card,
        holder=holder,
        newest_issue_seq=newest,
        limits=rules.limits_for(card_class),
        purses=_purses(conn, account),
        spent_today=int(spent),
        subsidised_meals_today=tuple(datetime.fromisoformat(t) for t in json.loads(subsidised)),
        last_charge_here=last_charge,
        pin_failures=0 if pin is None else int(pin[0]),
        pending_card_today=int(pending_card_today),
        pending_terminal=int(pending_terminal),
        degraded=degraded,
    )


def find_payment(conn: sqlite3.Connection, tx_id: str) -> OriginalPayment | None:
    """An allowed payment in this terminal's journal, by transaction id."""
    row = conn.execute("SELECT record FROM journal WHERE id = ?", (tx_id,)).fetchone()
    if row is None:
        return None
    record = json.loads(row[0])
    if record.get("decision") != "allow" or record.get("kind") not in ("meal", "shop", "barber"):
        return None
    split = tuple((Purse(part["purse"]), int(part["amount"])) for part in record["split"])
    return OriginalPayment(
        record["id"], record["holder_id"], record["card"], int(record.get("amount", 0)), split
    )


def load_correction_view(
    conn: sqlite3.Connection,
    supervisor_number: str,
    tx_id: str,
    *,
    merchant_id: str,
    service: Service,
    rules: RuleSet,
    view_seq: int,
) -> CorrectionView:
    supervisor = find_card(conn, supervisor_number)
    holder = None if supervisor is None else load_holder(conn, supervisor.holder_id)
    newest = None
    if supervisor is not None:
        newest = conn.execute(
            "SELECT max(issue_seq) FROM cards WHERE holder_id = ?", (supervisor.holder_id,)
        ).fetchone()[0]
    refunded = conn.execute(
        "SELECT purse, sum(amount) FROM refunds WHERE original_id = ? GROUP BY purse", (tx_id,)
    ).fetchall()
    return CorrectionView(
        view_seq=view_seq,
        merchant=rules.merchant(merchant_id, service),
        supervisor_card=supervisor,
        supervisor_holder=holder,
        supervisor_newest_issue_seq=newest,
        original=find_payment(conn, tx_id),
        refunded=tuple((Purse(p), int(a)) for p, a in refunded),
    )


# --- effects -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PassageUsed:
    """A confirmed passage: what anti-passback compares the next tap with."""

    card: str
    direction: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Charged:
    """An allowed payment: pending until HQ echoes it, counted against today's limits."""

    account: str
    card: str
    at: datetime
    amount: int
    split: tuple[tuple[Purse, int], ...]
    subsidised: bool


@dataclass(frozen=True, slots=True)
class PinOutcome:
    account: str
    ok: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Refunded:
    original_id: str
    account: str
    at: datetime
    amount: int
    split: tuple[tuple[Purse, int], ...]


@dataclass(frozen=True, slots=True)
class AwaitingPassage:
    """The gate opens for this admission: its passage outcome is owed to the journal."""


@dataclass(frozen=True, slots=True)
class PassageSettled:
    """The passage outcome of admission ``admission_id`` is journalled with this record."""

    admission_id: str


Effect = (
    PassageUsed | Charged | PinOutcome | Refunded | AwaitingPassage | PassageSettled | QrNonceSpent
)


def _charge(conn: sqlite3.Connection, effect: Charged, committed: Committed) -> None:
    utc = rfc3339(effect.at)
    conn.executemany(
        "INSERT INTO pending_debits (tx_id, tx_seq, account, purse, amount, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            (committed.id, committed.seq, effect.account, str(purse), part, utc)
            for purse, part in effect.split
        ],
    )
    day = effect.at.date().isoformat()
    row = conn.execute(
        "SELECT spent, subsidised FROM account_day WHERE account = ? AND day = ?",
        (effect.account, day),
    ).fetchone()
    spent, times = (0, []) if row is None else (int(row[0]), json.loads(row[1]))
    if effect.subsidised:
        times.append(effect.at.isoformat())
    conn.execute(
        "INSERT OR REPLACE INTO account_day (account, day, spent, subsidised) VALUES (?, ?, ?, ?)",
        (effect.account, day, spent + effect.amount, json.dumps(times)),
    )
    conn.execute(
        "INSERT INTO card_usage (card, last_charge_at) VALUES (?, ?) "
        "ON CONFLICT (card) DO UPDATE SET last_charge_at = excluded.last_charge_at",
        (effect.card, effect.at.isoformat()),
    )


def apply_effects(
    conn: sqlite3.Connection, effects: Iterable[Effect], committed: Committed
) -> None:
    for effect in effects:
        if isinstance(effect, PassageUsed):
            conn.execute(
                "INSERT INTO card_usage (card, last_direction, last_passage_at) VALUES (?, ?, ?) "
                "ON CONFLICT (card) DO UPDATE SET last_direction = excluded.last_direction, "
                "last_passage_at = excluded.last_passage_at",
                (effect.card, effect.direction, effect.at.isoformat()),
            )
        elif isinstance(effect, Charged):
            _charge(conn, effect, committed)
        elif isinstance(effect, PinOutcome):
            conn.execute(
                "INSERT INTO pin_state (account, failures, last_at) VALUES (?, ?, ?) "
                "ON CONFLICT (account) DO UPDATE SET last_at = excluded.last_at, "
                "failures = CASE WHEN excluded.failures = 0 THEN 0 ELSE failures + 1 END",
                (effect.account, 0 if effect.ok else 1, effect.at.isoformat()),
            )
        elif isinstance(effect, AwaitingPassage):
            conn.execute(
                "INSERT INTO awaiting_passage (tx_id, seq) VALUES (?, ?)",
                (committed.id, committed.seq),
            )
        elif isinstance(effect, PassageSettled):
            conn.execute("DELETE FROM awaiting_passage WHERE tx_id = ?", (effect.admission_id,))
        elif isinstance(effect, QrNonceSpent):
            spend(conn, effect)
        elif isinstance(effect, Refunded):
            conn.executemany(
                "INSERT INTO refunds (original_id, purse, amount, tx_seq) VALUES (?, ?, ?, ?)",
                [
                    (effect.original_id, str(purse), part, committed.seq)
                    for purse, part in effect.split
                ],
            )
            conn.execute(
                "UPDATE account_day SET spent = max(0, spent - ?) WHERE account = ? AND day = ?",
                (effect.amount, effect.account, effect.at.date().isoformat()),
            )
