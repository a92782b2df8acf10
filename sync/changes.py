"""Change-log entries: checked field by field and turned into typed values before any is applied.

Messages come from outside, so a batch is parsed completely before the store sees it: one bad
entry rejects the whole batch (PROTOCOL.md: "missing required fields reject the whole message").
Unknown *fields* are ignored (forward compatible); an unknown *kind* is kept as
:class:`UnknownChange` so its seq still counts, and the terminal moves past it.
"""

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from models.cards import CardStatus, HolderStatus
from models.schedule import parse_hhmm
from models.wallet import Purse
from sync.envelope import Rejected, Rejection, b64decode

# ASCII digits only, the whole string: \d would take other scripts' digits, $ a trailing newline.
CARD_NUMBER = re.compile(r"[0-9]{20}")
LEDGER_REASONS = frozenset(
    {"topup", "subsidy_grant", "subsidy_expire", "debit", "correction", "transfer"}
)
# What a priority deny may set: an unlost (back to active) only ever comes through the log.
DENY_STATUSES = frozenset({"lost", "replaced", "frozen", "expired", "cancelled"})
RULE_TYPES = frozenset({"meal_period", "price", "limit", "supervisor", "binding"})
MAX_FACE_BYTES = 512 * 1024
# Built once: ``set(HolderStatus)`` per record walked the enum each time (snapshots parse
# hundreds of thousands of records). StrEnum members compare and hash as their values.
HOLDER_STATUSES = frozenset(HolderStatus)
CARD_STATUSES = frozenset(CardStatus)
PURSES = frozenset(Purse)


def bad(what: str) -> Rejected:
    return Rejected(Rejection.BAD_BODY, what)


def text(data: Mapping[str, Any], key: str, *, optional: bool = False) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise bad(f"{key}: a non-empty string is required")
    return value


def req_text(data: Mapping[str, Any], key: str) -> str:
    # text() inlined: the most called check of a snapshot, same test and message.
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise bad(f"{key}: a non-empty string is required")
    return value


def integer(data: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"{key}: an integer is required")
    if minimum is not None and value < minimum:
        raise bad(f"{key}: must be at least {minimum}")
    return value


def day(data: Mapping[str, Any], key: str, *, optional: bool = True) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise bad(f"{key}: a non-empty string is required")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise bad(f"{key}: a YYYY-MM-DD date is required") from None
    if len(value) != 10:
        raise bad(f"{key}: a YYYY-MM-DD date is required")
    return value


def strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, list):
        # A plain loop: a generator inside all() cost more than the check, three times a holder.
        for item in value:
            if not isinstance(item, str) or not item:
                break
        else:
            return tuple(value)
    raise bad(f"{key}: a list of strings is required")


def obj(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise bad(f"{key}: an object is required")
    return value


@dataclass(frozen=True, slots=True)
class HolderRecord:
    id: str
    name: str
    unit: str
    dept: str
    card_class: str
    status: str
    valid_from: str | None
    valid_until: str | None
    spend_only_until: str | None
    groups: tuple[str, ...]
    canteens: tuple[str, ...]
    services: tuple[str, ...]
    require_face: bool
    pin_hash: str | None
    qr_keys: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class CardRecord:
    number: str
    holder_id: str
    issue_seq: int
    uid: str | None
    card_class: str
    status: str
    valid_from: str | None
    valid_until: str | None
    status_since: str | None


@dataclass(frozen=True, slots=True)
class WindowRecord:
    days: tuple[int, ...]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class GroupRecord:
    id: str
    doors: tuple[str, ...]
    windows: tuple[WindowRecord, ...]
    calendar: str


@dataclass(frozen=True, slots=True)
class Origin:
    tid: str
    tx_seq: int
    tx_id: str


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    id: str
    account: str
    purse: str
    delta: int
    balance_after: int
    reason: str
    origin: Origin | None
    at: str


@dataclass(frozen=True, slots=True)
class HolderUpsert:
    seq: int
    holder: HolderRecord


@dataclass(frozen=True, slots=True)
class HolderDelete:
    seq: int
    holder_id: str


@dataclass(frozen=True, slots=True)
class CardUpsert:
    seq: int
    card: CardRecord


@dataclass(frozen=True, slots=True)
class GroupUpsert:
    seq: int
    group: GroupRecord


@dataclass(frozen=True, slots=True)
class GroupDelete:
    seq: int
    group_id: str


@dataclass(frozen=True, slots=True)
class HolidayUpsert:
    seq: int
    calendar: str
    holidays: tuple[str, ...]
    workdays: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RuleUpsert:
    seq: int
    id: str
    type: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FaceUpsert:
    seq: int
    holder_id: str
    model: str | None
    template: bytes | None
    photo: bytes | None


@dataclass(frozen=True, slots=True)
class FaceDelete:
    seq: int
    holder_id: str


@dataclass(frozen=True, slots=True)
class LedgerChange:
    seq: int
    entry: LedgerRecord


@dataclass(frozen=True, slots=True)
class UnknownChange:
    seq: int
    kind: str


Change = (
    HolderUpsert
    | HolderDelete
    | CardUpsert
    | GroupUpsert
    | GroupDelete
    | HolidayUpsert
    | RuleUpsert
    | FaceUpsert
    | FaceDelete
    | LedgerChange
    | UnknownChange
)


@dataclass(frozen=True, slots=True)
class Batch:
    first: int
    last: int
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class DenyEntry:
    number: str
    status: str
    since: str | None


def parse_holder(data: Mapping[str, Any]) -> HolderRecord:
    status = req_text(data, "status")
    if status not in HOLDER_STATUSES:
        raise bad(f"holder.status: unknown {status!r}")
    require_face = data.get("require_face", False)
    if not isinstance(require_face, bool):
        raise bad("holder.require_face: true or false")
    qr_raw = data.get("qr_keys", [])
    if not isinstance(qr_raw, list) or not all(isinstance(q, dict) for q in qr_raw):
        raise bad("holder.qr_keys: a list of {k, pub}")
    return HolderRecord(
        id=req_text(data, "id"),
        name=req_text(data, "name"),
        unit=str(data.get("unit") or ""),
        dept=str(data.get("dept") or ""),
        card_class=req_text(data, "class"),
        status=status,
        valid_from=day(data, "valid_from"),
        valid_until=day(data, "valid_until"),
        spend_only_until=day(data, "spend_only_until"),
        groups=strings(data, "groups"),
        canteens=strings(data, "canteens"),
        services=strings(data, "services"),
        require_face=require_face,
        pin_hash=text(data, "pin_hash", optional=True),
        qr_keys=tuple((req_text(q, "k"), req_text(q, "pub")) for q in qr_raw),
    )


def parse_card(data: Mapping[str, Any]) -> CardRecord:
    number = req_text(data, "number")
    if not CARD_NUMBER.fullmatch(number):
        raise bad("card.number: 20 digits")
    status = req_text(data, "status")
    if status not in CARD_STATUSES:
        raise bad(f"card.status: unknown {status!r}")
    return CardRecord(
        number=number,
        holder_id=req_text(data, "holder_id"),
        issue_seq=integer(data, "issue_seq", minimum=0),
        uid=text(data, "uid", optional=True),
        card_class=req_text(data, "class"),
        status=status,
        valid_from=day(data, "valid_from"),
        valid_until=day(data, "valid_until"),
        status_since=text(data, "status_since", optional=True),
    )


def _minutes(data: Mapping[str, Any], key: str) -> int:
    try:
        return parse_hhmm(req_text(data, key))
    except ValueError as exc:
        raise bad(f"{key}: {exc}") from None


def parse_group(data: Mapping[str, Any]) -> GroupRecord:
    windows = []
    raw_windows = data.get("windows", [])
    if not isinstance(raw_windows, list):
        raise bad("group.windows: a list is required")
    for raw in raw_windows:
        if not isinstance(raw, dict):
            raise bad("group.windows: objects are required")
        days = raw.get("days")
        if (
            not isinstance(days, list)
            or not days
            or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 8 for d in days)
        ):
            raise bad("group.windows.days: a list of 1..7 (8 = public holiday)")
        start, end = _minutes(raw, "from"), _minutes(raw, "to")
        if start == end or start >= 1440:
            raise bad("group.windows: from and to must differ, from before 24:00")
        windows.append(WindowRecord(tuple(sorted(set(days))), start, end))
    return GroupRecord(
        id=req_text(data, "id"),
        doors=strings(data, "doors"),
        windows=tuple(windows),
        calendar=str(data.get("calendar") or ""),
    )


def parse_ledger(data: Mapping[str, Any]) -> LedgerRecord:
    purse = req_text(data, "purse")
    if purse not in PURSES:
        raise bad(f"ledger.purse: unknown {purse!r}")
    reason = req_text(data, "reason")
    if reason not in LEDGER_REASONS:
        raise bad(f"ledger.reason: unknown {reason!r}")
    origin = None
    if data.get("origin") is not None:
        raw = obj(data, "origin")
        origin = Origin(
            req_text(raw, "tid"), integer(raw, "tx_seq", minimum=1), req_text(raw, "tx_id")
        )
    return LedgerRecord(
        id=req_text(data, "id"),
        account=req_text(data, "account"),
        purse=purse,
        delta=integer(data, "delta"),
        balance_after=integer(data, "balance_after"),
        reason=reason,
        origin=origin,
        at=req_text(data, "at"),
    )


def _rule_fields(rule_type: str, rule: Mapping[str, Any]) -> None:
    """The fields docs/protocol.md defines for each known rule type."""
    if rule_type == "meal_period":
        req_text(rule, "canteen")
        req_text(rule, "name")
        _minutes(rule, "from")
        _minutes(rule, "to")
        days = rule.get("days", [1, 2, 3, 4, 5, 6, 7])
        if not isinstance(days, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7 for d in days
        ):
            raise bad("rule.days: a list of 1..7")
    elif rule_type == "price":
        req_text(rule, "canteen")
        req_text(rule, "period")
        if rule.get("mode") not in ("fixed", "entered"):
            raise bad("rule.mode: fixed or entered")
        by_class = rule.get("by_class", {})
        if not isinstance(by_class, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in by_class.values()
        ):
            raise bad("rule.by_class: {class: fen}")
        if rule.get("default") is not None:
            integer(rule, "default", minimum=0)
    elif rule_type == "limit":
        req_text(rule, "class")
        for key in ("per_tx", "per_day", "pin_free", "offline_per_card_day"):
            if rule.get(key) is not None:
                integer(rule, key, minimum=0)
    elif rule_type == "supervisor":
        req_text(rule, "holder_id")
        strings(rule, "merchants")
    elif rule_type == "binding":
        req_text(rule, "terminal")
        if not any(isinstance(rule.get(k), str) for k in ("door", "canteen", "shop")):
            raise bad("rule binding: one of door, canteen, shop")


def parse_change(data: Any, *, first: int | None = None, last: int | None = None) -> Change:
    """One entry of a ``changes`` batch (or one line of a snapshot)."""
    if not isinstance(data, dict):
        raise bad("a change is an object")
    seq = integer(data, "seq", minimum=1)
    if first is not None and last is not None and not first <= seq <= last:
        raise bad(f"change seq {seq} outside the batch {first}..{last}")
    kind = req_text(data, "kind")
    if kind == "holder.upsert":
        return HolderUpsert(seq, parse_holder(obj(data, "holder")))
    if kind == "holder.delete":
        return HolderDelete(seq, req_text(data, "holder_id"))
    if kind == "card.upsert":
        return CardUpsert(seq, parse_card(obj(data, "card")))
    if kind == "group.upsert":
        return GroupUpsert(seq, parse_group(obj(data, "group")))
    if kind == "group.delete":
        return GroupDelete(seq, req_text(data, "group_id"))
    if kind == "holiday.upsert":
        holidays = strings(data, "holidays")
        workdays = strings(data, "workdays")
        for value in holidays + workdays:
            day({"d": value}, "d")
        return HolidayUpsert(seq, req_text(data, "calendar"), holidays, workdays)
    if kind == "rule.upsert":
        rule = obj(data, "rule")
        rule_type = req_text(rule, "type")
        if rule_type in RULE_TYPES:
            _rule_fields(rule_type, rule)
        return RuleUpsert(seq, req_text(rule, "id"), rule_type, rule)
    if kind == "face.upsert":
        template = photo = None
        if data.get("template") is not None:
            template = b64decode(data["template"], "template")
            if len(template) % 4 or not template:
                raise bad("face.template: little-endian float32 values")
        if data.get("photo") is not None:
            photo = b64decode(data["photo"], "photo")
        if template is None and photo is None:
            raise bad("face.upsert needs a template or a photo")
        if len(template or photo or b"") > MAX_FACE_BYTES:
            raise bad("face data too large")
        model = text(data, "model", optional=template is None)
        return FaceUpsert(seq, req_text(data, "holder_id"), model, template, photo)
    if kind == "face.delete":
        return FaceDelete(seq, req_text(data, "holder_id"))
    if kind == "ledger":
        return LedgerChange(seq, parse_ledger(obj(data, "entry")))
    # "keys" is no change any more: HQ's online key could otherwise name its own successors.
    # The keyset comes signed by the offline root key on its own topic (sync.keyset).
    return UnknownChange(seq, kind)


def parse_batch(body: Mapping[str, Any]) -> Batch:
    """A ``changes`` body ``{"from","to","changes":[...]}``, entries strictly increasing."""
    first = integer(body, "from", minimum=1)
    last = integer(body, "to", minimum=first)
    raw = body.get("changes")
    if not isinstance(raw, list):
        raise bad("changes: a list is required")
    changes = tuple(parse_change(item, first=first, last=last) for item in raw)
    seqs = [c.seq for c in changes]
    if any(b <= a for a, b in itertools.pairwise(seqs)):
        raise bad("change seqs must increase within a batch")
    return Batch(first, last, changes)


def parse_deny(body: Mapping[str, Any]) -> tuple[int, tuple[DenyEntry, ...]]:
    seq = integer(body, "seq", minimum=1)
    raw = body.get("cards")
    if not isinstance(raw, list) or not raw:
        raise bad("deny.cards: a non-empty list")
    entries = []
    for item in raw:
        if not isinstance(item, dict):
            raise bad("deny.cards: objects")
        number = req_text(item, "number")
        status = req_text(item, "status")
        if not CARD_NUMBER.fullmatch(number):
            raise bad("deny.number: 20 digits")
        if status not in DENY_STATUSES:
            raise bad(f"deny.status: {status!r} is not a denying status")
        entries.append(DenyEntry(number, status, text(item, "since", optional=True)))
    return seq, tuple(entries)
