"""A site described in a TOML file (holders, cards, groups, purses, rules, a holiday calendar),
loaded into a terminal's store. The demo seeds its database from one (devtools/demo/site.toml)
and the tests from theirs (tests/fixtures/site.toml): the data is a file, not code.

The file's keys: ``timezone``, ``door``, ``canteen``, ``shop``, ``card_prefix`` (a card number is
the prefix, then ``n`` in as many digits as make 20), ``pin`` and ``pin_salt`` (the PIN of every
holder with ``pin = true``), ``[calendar]`` (``id``, ``holidays``), ``[[groups]]`` (``id``,
``doors``, ``windows`` of ``days`` 1..8 and ``from``/``to``), ``[[holders]]`` (the fields of
:class:`models.cards.Holder`, ``class`` for the card class, ``groups``, ``cards`` of ``n`` with
an optional ``seq``, ``status``, ``valid_until``, and ``purses`` by purse name) and ``[[rules]]``
(``id``, ``kind``, ``body`` as HQ sends them).
"""

import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.cards import Card, CardStatus, Holder, HolderStatus
from models.errors import ConfigError
from models.pin import hash_pin
from models.schedule import AccessGroup, TimeWindow, parse_hhmm
from models.wallet import Purse
from terminal.store import Store
from terminal.store.allowlist import (
    card_row,
    holder_row,
    set_calendar,
    set_holder_groups,
    set_purse,
    upsert_cards,
    upsert_group,
    upsert_holders,
    upsert_rule,
)

CARD_NUMBER_DIGITS = 20


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Window(_Strict):
    days: list[int] = Field(min_length=1)
    start: str = Field(alias="from")
    end: str = Field(alias="to")


class _Group(_Strict):
    id: str
    doors: list[str]
    windows: list[_Window]


class _Calendar(_Strict):
    id: str
    holidays: list[date] = []


class _CardEntry(_Strict):
    n: int = Field(ge=0)
    seq: int = Field(1, ge=1)
    status: CardStatus = CardStatus.ACTIVE
    valid_until: date | None = None


class _HolderEntry(_Strict):
    id: str
    name: str
    card_class: str = Field(alias="class")
    status: HolderStatus = HolderStatus.ACTIVE
    valid_until: date | None = None
    spend_only_until: date | None = None
    services: list[str] = []
    canteens: list[str] = []
    pin: bool = False
    groups: list[str] = []
    cards: list[_CardEntry] = []
    purses: dict[Purse, int] = {}


class _Rule(_Strict):
    id: str
    kind: str
    body: dict[str, Any]


class _SiteFile(_Strict):
    timezone: str
    door: str
    canteen: str
    shop: str
    card_prefix: str = Field(pattern=r"^[0-9]{1,19}$")
    pin: str = Field(pattern=r"^[0-9]{4,12}$")
    pin_salt: str
    calendar: _Calendar
    groups: list[_Group] = []
    holders: list[_HolderEntry] = []
    rules: list[_Rule] = []


Person = tuple[Holder, tuple[str, ...], tuple[Card, ...]]


@dataclass(frozen=True)
class Site:
    """A loaded site: what :meth:`seed` writes, and the names tests and the demo refer to."""

    timezone: ZoneInfo
    door: str
    canteen: str
    shop: str
    pin: str
    card_prefix: str
    calendar: str
    holidays: tuple[date, ...]
    groups: tuple[AccessGroup, ...]
    people: tuple[Person, ...]
    purses: tuple[tuple[str, Purse, int], ...]
    rules: tuple[tuple[str, str, dict[str, Any]], ...]

    def card_number(self, n: int) -> str:
        """The 20-digit application serial number (CARD.md) of the site's card ``n``."""
        return card_number(self.card_prefix, n)

    def holder_name(self, holder_id: str | None) -> str:
        for holder, _, _ in self.people:
            if holder.id == holder_id:
                return f"{holder.name} ({holder.card_class})"
        return "—"

    def seed(self, store: Store) -> None:
        with store.write() as conn:
            for rule_id, kind, body in self.rules:
                upsert_rule(conn, rule_id, kind, body)
            for account, purse, balance in self.purses:
                set_purse(conn, account, str(purse), balance)
            for group in self.groups:
                upsert_group(conn, group)
            set_calendar(conn, self.calendar, self.holidays, ())
            upsert_holders(conn, [holder_row(holder) for holder, _, _ in self.people])
            upsert_cards(conn, [card_row(card) for _, _, cards in self.people for card in cards])
            for holder, groups, _ in self.people:
                set_holder_groups(conn, holder.id, groups)


def load_site(path: Path) -> Site:
    """The site in ``path``; :class:`ConfigError` names the file and the key that is wrong."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        parsed = _SiteFile.model_validate(raw)
        zone = ZoneInfo(parsed.timezone)
    except (OSError, tomllib.TOMLDecodeError, ValidationError, LookupError, ValueError) as exc:
        raise ConfigError(f"site file {path}: {exc}") from None
    pin_hash = hash_pin(parsed.pin, parsed.pin_salt.encode())
    return Site(
        timezone=zone,
        door=parsed.door,
        canteen=parsed.canteen,
        shop=parsed.shop,
        pin=parsed.pin,
        card_prefix=parsed.card_prefix,
        calendar=parsed.calendar.id,
        holidays=tuple(parsed.calendar.holidays),
        groups=tuple(_group(group, parsed.calendar.id) for group in parsed.groups),
        people=tuple(_person(entry, parsed.card_prefix, pin_hash) for entry in parsed.holders),
        purses=tuple(
            (entry.id, purse, balance)
            for entry in parsed.holders
            for purse, balance in entry.purses.items()
        ),
        rules=tuple((rule.id, rule.kind, dict(rule.body)) for rule in parsed.rules),
    )


def card_number(prefix: str, n: int) -> str:
    return f"{prefix}{n:0{CARD_NUMBER_DIGITS - len(prefix)}d}"


def _group(group: _Group, calendar: str) -> AccessGroup:
    windows = tuple(
        TimeWindow(frozenset(w.days), parse_hhmm(w.start), parse_hhmm(w.end)) for w in group.windows
    )
    return AccessGroup(group.id, frozenset(group.doors), windows, calendar)


def _person(entry: _HolderEntry, prefix: str, pin_hash: str) -> Person:
    holder = Holder(
        entry.id,
        entry.name,
        entry.card_class,
        entry.status,
        valid_until=entry.valid_until,
        spend_only_until=entry.spend_only_until,
        services=frozenset(entry.services),
        canteens=frozenset(entry.canteens),
        pin_hash=pin_hash if entry.pin else None,
    )
    cards = tuple(
        Card(
            card_number(prefix, card.n),
            entry.id,
            card.seq,
            entry.card_class,
            card.status,
            valid_until=card.valid_until,
        )
        for card in entry.cards
    )
    return holder, tuple(entry.groups), cards
