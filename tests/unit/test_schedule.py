import pytest

from models.schedule import TimeWindow, parse_hhmm


@pytest.mark.parametrize(("text", "minutes"), [("00:00", 0), ("07:30", 450), ("24:00", 1440)])
def test_parse_hhmm(text: str, minutes: int) -> None:
    assert parse_hhmm(text) == minutes


@pytest.mark.parametrize("text", ["7:30", "07:60", "24:01", "ab:cd", "0730", "", "07:3"])
def test_parse_hhmm_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(text)


@pytest.mark.parametrize(
    ("days", "start", "end"),
    [
        (frozenset(), 0, 60),
        (frozenset({0}), 0, 60),
        (frozenset({9}), 0, 60),
        (frozenset({1}), 60, 60),
        (frozenset({1}), 1440, 60),
        (frozenset({1}), 0, 1441),
    ],
)
def test_window_rejects_nonsense(days: frozenset[int], start: int, end: int) -> None:
    with pytest.raises(ValueError):
        TimeWindow(days, start, end)
