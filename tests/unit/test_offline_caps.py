"""Money offline is bounded out of the box: a card's day on a degraded terminal has a cap unless
HQ's limits rule says none (explicit null), and so has the terminal as a whole."""

from models.pos import DEFAULT_OFFLINE_PER_CARD_DAY
from models.rules import parse_rules


def test_a_limits_rule_without_an_offline_cap_gets_the_shipped_one() -> None:
    rules, problems = parse_rules([("l1", "limit", {"class": "red", "per_tx": 5000})])
    assert problems == []
    assert rules.limits_for("red").per_tx == 5000  # the rule itself was taken
    assert rules.limits_for("red").offline_per_card_day == DEFAULT_OFFLINE_PER_CARD_DAY


def test_an_explicit_null_is_the_sites_choice_of_none() -> None:
    rules, _ = parse_rules([("l1", "limit", {"class": "red", "offline_per_card_day": None})])
    assert rules.limits_for("red").offline_per_card_day is None


def test_a_class_without_any_rule_has_the_shipped_cap() -> None:
    rules, _ = parse_rules([])
    assert rules.limits_for("blue").offline_per_card_day == DEFAULT_OFFLINE_PER_CARD_DAY
