from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.interfaces import AmountEntered, Confirmed, FacePayRequested
from drivers.sim import ScriptError, parse_script, parse_script_line
from models import CardFault, Genuineness, PresentedCard, Reason


def test_tap_with_options() -> None:
    step = parse_script_line("tap 123 seq=2 genuine=no until=2027-01-31 hold=1.5")
    assert step is not None
    assert step.action == "tap"
    assert step.seconds == 1.5
    assert step.card == PresentedCard(
        "123", Genuineness.NOT_GENUINE, 2, None, None, date(2027, 1, 31)
    )


def test_comments_blank_lines_and_other_verbs() -> None:
    steps = parse_script(
        ["# morning", "", "present 1", "remove", "tear", "fault malformed", "wait 0.5"]
    )
    assert [s.action for s in steps] == ["present", "remove", "tear", "fault", "wait"]
    assert steps[3].card == CardFault(Reason.CARD_MALFORMED, "simulated fault")


def test_face_pay_is_a_key_on_the_pos() -> None:
    steps = parse_script(["amount 1250", "face", "confirm"])
    assert [s.action for s in steps] == ["key", "key", "key"]
    assert [s.key for s in steps] == [AmountEntered(1250), FacePayRequested(), Confirmed()]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("tap", "exactly one card number"),
        ("tap abc", "digits"),
        ("tap 1 colour=red", "unknown option"),
        ("tap 1 seq=x", "bad option value"),
        ("tap 1 until=2027-13-01", "bad option value"),
        ("wait forever", "seconds"),
        ("wait 99999", "0..3600"),
        ("tap 1 hold=nan", "0..3600"),
        ("tap 1 hold=-1", "0..3600"),
        ("tap 1 seq=256", "bad option value"),
        ("fault sideways", "cannot understand"),
        ("dance", "cannot understand"),
        ("face 1", "cannot understand"),
        ("face now=yes", "cannot understand"),
        ('tap "1', "No closing quotation"),
    ],
)
def test_bad_lines_name_the_line_and_the_problem(line: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message) as caught:
        parse_script(["# ok", line])
    assert str(caught.value).startswith("line 2:")


@given(st.text(max_size=60))
def test_any_line_parses_or_is_a_script_error(line: str) -> None:
    try:
        step = parse_script_line(line)
    except ScriptError as exc:
        assert str(exc).startswith("line 1:")
    else:
        assert step is None or step.action in {
            "tap",
            "present",
            "remove",
            "tear",
            "fault",
            "wait",
            "key",
        }
