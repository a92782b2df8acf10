from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.pin import hash_pin, mask_name, verify_pin
from models.pos import Limits, Pricing
from models.reasons import Reason, message_en, message_zh
from models.rules import parse_rules
from models.wallet import Service


def test_rules_become_merchants_and_limits() -> None:
    rules, errors = parse_rules(
        [
            (
                "a",
                "meal_period",
                {
                    "canteen": "c1",
                    "name": "lunch",
                    "from": "11:00",
                    "to": "13:30",
                    "days": [1, 2, 3, 4, 5],
                },
            ),
            (
                "b",
                "price",
                {
                    "canteen": "c1",
                    "period": "lunch",
                    "mode": "fixed",
                    "by_class": {"red": 500},
                    "default": 800,
                },
            ),
            ("c", "limit", {"class": "red", "per_tx": 100, "pin_free": 50}),
            ("d", "supervisor", {"holder_id": "H9", "merchants": ["c1"]}),
            ("e", "binding", {"terminal": "t1", "canteen": "c1"}),
            ("f", "future_kind", {"anything": True}),
        ]
    )
    assert errors == []
    canteen = rules.merchant("c1", Service.MEAL)
    assert [p.name for p in canteen.meal_periods] == ["lunch"]
    assert dict(canteen.prices)["lunch"] == Pricing("fixed", (("red", 500),), 800)
    assert canteen.supervisors == frozenset({"H9"})
    assert rules.limits_for("red") == Limits(per_tx=100, pin_free=50)
    assert rules.limits_for("gold") == Limits()
    assert rules.merchant("shop", Service.SHOP).prices == ()


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("meal_period", {"canteen": "c", "name": "x", "from": "25:00", "to": "13:00"}, "range"),
        (
            "meal_period",
            {"canteen": "c", "name": "x", "from": "11:00", "to": "13:00", "days": [0]},
            "days",
        ),
        ("price", {"canteen": "c", "period": "p", "mode": "free"}, "mode"),
        ("price", {"canteen": "c", "period": "p", "mode": "fixed"}, "needs by_class or default"),
        ("price", {"canteen": "c", "period": "p", "mode": "fixed", "default": 12.5}, "whole fen"),
        ("price", {"canteen": "c", "period": "p", "mode": "fixed", "default": True}, "whole fen"),
        ("limit", {"class": "red", "per_day": -1}, "whole fen"),
        ("supervisor", {"holder_id": "H", "merchants": "c1"}, "merchants"),
        ("limit", [], "body must be an object"),
    ],
)
def test_bad_rules_are_reported_and_left_out(kind: str, body: Any, message: str) -> None:
    rules, errors = parse_rules([("r1", kind, body)])
    assert len(errors) == 1
    assert errors[0].startswith(f"rule r1 ({kind}): ")
    assert message in errors[0]
    assert rules.limits == {} and rules.meal_periods == {} and rules.prices == {}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@given(
    st.lists(
        st.tuples(
            st.text(max_size=4),
            st.sampled_from(["meal_period", "price", "limit", "supervisor", "x"]),
            st.dictionaries(
                st.sampled_from(
                    [
                        "canteen",
                        "name",
                        "from",
                        "to",
                        "days",
                        "period",
                        "mode",
                        "by_class",
                        "default",
                        "class",
                        "per_tx",
                        "holder_id",
                        "merchants",
                    ]
                ),
                json_values,
            ),
        ),
        max_size=6,
    )
)
def test_any_rule_body_parses_or_is_reported(rows: list[tuple[str, str, dict[str, Any]]]) -> None:
    rules, errors = parse_rules(rows)
    assert len(errors) <= len(rows)
    for periods in rules.meal_periods.values():
        assert all(p.name for p in periods)


def test_pin_hash_round_trip() -> None:
    stored = hash_pin("123456", b"saltsalt", iterations=1000)
    assert stored.startswith("pbkdf2_sha256$1000$")
    assert verify_pin("123456", stored)
    assert not verify_pin("123457", stored)
    assert "123456" not in stored


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "",
        "md5$1$a$b",
        "pbkdf2_sha256$x$a$b",
        "pbkdf2_sha256$1000$!!$??",
        "pbkdf2_sha256$0$YWFh$YWFh",
    ],
)
def test_malformed_pin_hashes_never_verify(stored: str | None) -> None:
    assert not verify_pin("123456", stored)


def test_pin_shape_is_checked() -> None:
    with pytest.raises(ValueError, match="4 to 12 digits"):
        hash_pin("12a4", b"saltsalt")


def test_masked_names() -> None:
    assert (mask_name("张伟"), mask_name("欧阳娜娜"), mask_name("")) == ("张*", "欧***", "")


def test_every_reason_has_both_messages() -> None:
    for reason in Reason:
        assert message_zh(reason) and message_en(reason)
