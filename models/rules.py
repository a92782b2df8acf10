"""Rules as headquarters sends them (``rule.upsert`` bodies), parsed into the POS types.

Rule bodies come from outside, so every field is checked; a bad rule is reported and left out,
never half-applied, and never stops the other rules from working. Field definitions are in
docs/protocol.md.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from models.pos import DEFAULT_OFFLINE_PER_CARD_DAY, ENTERED, Limits, MealPeriod, Merchant, Pricing
from models.schedule import TimeWindow, parse_hhmm
from models.wallet import Service

MAX_FEN = 100_000_000  # 1,000,000 yuan: anything above is a data error, not a price


class RuleError(ValueError):
    """A rule body that cannot be used; the message names the rule and the field."""


@dataclass(frozen=True)
class RuleSet:
    meal_periods: Mapping[str, tuple[MealPeriod, ...]] = field(default_factory=dict)
    prices: Mapping[str, tuple[tuple[str, Pricing], ...]] = field(default_factory=dict)
    limits: Mapping[str, Limits] = field(default_factory=dict)
    supervisors: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def merchant(self, merchant_id: str, service: Service) -> Merchant:
        return Merchant(
            merchant_id,
            service,
            self.meal_periods.get(merchant_id, ()),
            self.prices.get(merchant_id, ()) if service is Service.MEAL else (),
            self.supervisors.get(merchant_id, frozenset()),
        )

    def limits_for(self, card_class: str) -> Limits:
        return self.limits.get(card_class, Limits())


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise RuleError(f"{key}: must be a non-empty string, got {value!r}")
    return value


def _fen(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FEN:
        raise RuleError(f"{key}: must be whole fen 0..{MAX_FEN}, got {value!r}")
    return value


def _optional_fen(body: Mapping[str, Any], key: str) -> int | None:
    return None if body.get(key) is None else _fen(body[key], key)


def _period(body: Mapping[str, Any]) -> MealPeriod:
    days = body.get("days", [1, 2, 3, 4, 5, 6, 7])
    if (
        not isinstance(days, list)
        or not days
        or not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 7 for d in days)
    ):
        raise RuleError(f"days: must be a list of 1..7, got {days!r}")
    try:
        window = TimeWindow(
            frozenset(days), parse_hhmm(_text(body, "from")), parse_hhmm(_text(body, "to"))
        )
    except ValueError as exc:
        raise RuleError(str(exc)) from None
    return MealPeriod(_text(body, "name"), window)


def _pricing(body: Mapping[str, Any]) -> Pricing:
    mode = body.get("mode")
    if mode == "entered":
        return ENTERED
    if mode != "fixed":
        raise RuleError(f"mode: must be 'fixed' or 'entered', got {mode!r}")
    by_class = body.get("by_class", {})
    if not isinstance(by_class, dict):
        raise RuleError("by_class: must map card classes to fen")
    prices = tuple(sorted((str(k), _fen(v, f"by_class.{k}")) for k, v in by_class.items()))
    default = _optional_fen(body, "default")
    if not prices and default is None:
        raise RuleError("a fixed price needs by_class or default")
    return Pricing("fixed", prices, default)


def _limits(body: Mapping[str, Any]) -> Limits:
    return Limits(
        per_tx=_optional_fen(body, "per_tx"),
        per_day=_optional_fen(body, "per_day"),
        pin_free=_optional_fen(body, "pin_free"),
        # Absent: the shipped cap; an explicit null is the site's choice of none.
        offline_per_card_day=_optional_fen(body, "offline_per_card_day")
        if "offline_per_card_day" in body
        else DEFAULT_OFFLINE_PER_CARD_DAY,
    )


def parse_rules(rows: Iterable[tuple[str, str, Mapping[str, Any]]]) -> tuple[RuleSet, list[str]]:
    """Parse ``(id, type, body)`` rows; returns the usable rules and one message per bad rule.

    Types this terminal does not use (``binding``: the terminal's own door or merchant is in its
    config) and unknown future types are skipped silently, as the protocol asks.
    """
    periods: dict[str, list[MealPeriod]] = {}
    prices: dict[str, list[tuple[str, Pricing]]] = {}
    limits: dict[str, Limits] = {}
    supervisors: dict[str, set[str]] = {}
    errors: list[str] = []
    for rule_id, kind, body in sorted(rows, key=lambda row: row[0]):
        try:
            if not isinstance(body, Mapping):
                raise RuleError("body must be an object")
            # Parse the whole rule before storing any of it: a bad rule leaves no trace.
            if kind == "meal_period":
                period = _period(body)
                periods.setdefault(_text(body, "canteen"), []).append(period)
            elif kind == "price":
                priced = (_text(body, "period"), _pricing(body))
                prices.setdefault(_text(body, "canteen"), []).append(priced)
            elif kind == "limit":
                limits[_text(body, "class")] = _limits(body)
            elif kind == "supervisor":
                holder = _text(body, "holder_id")
                merchants = body.get("merchants")
                if not isinstance(merchants, list) or not all(
                    isinstance(m, str) for m in merchants
                ):
                    raise RuleError("merchants: must be a list of merchant ids")
                for merchant in merchants:
                    supervisors.setdefault(merchant, set()).add(holder)
        except RuleError as exc:
            errors.append(f"rule {rule_id} ({kind}): {exc}")
    return (
        RuleSet(
            {k: tuple(v) for k, v in periods.items()},
            {k: tuple(v) for k, v in prices.items()},
            limits,
            {k: frozenset(v) for k, v in supervisors.items()},
        ),
        errors,
    )
