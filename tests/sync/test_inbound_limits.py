"""Small edges of inbound parsing: a snapshot chunk that inflates without bound, and card
numbers that only look like 20 digits."""

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.changes import parse_card, parse_deny
from sync.envelope import Rejected
from sync.snapshot import MAX_CHUNK_INFLATED, inflate


def test_a_decompression_bomb_is_refused_without_inflating_it() -> None:
    bomb = zlib.compress(b"\n" * (MAX_CHUNK_INFLATED + 1), 9)
    assert len(bomb) < 64 * 1024  # small on the wire: the point of a bomb
    with pytest.raises(Rejected, match="inflates beyond"):
        inflate(bomb)


def test_a_chunk_within_the_limit_and_a_truncated_one() -> None:
    lines = b'{"kind":"meta"}\n' * 1000
    assert inflate(zlib.compress(lines)) == lines
    with pytest.raises(Rejected, match="truncated"):
        inflate(zlib.compress(lines)[:-4])


@pytest.mark.parametrize(
    "number",
    [
        "36010020260000000001\n",  # $ used to accept the trailing newline
        "３６０１００２０２６００００００００１",  # fullwidth digits
        "٣٦٠١٠٠٢٠٢٦٠٠٠٠٠٠٠٠٠١",  # Arabic-Indic digits: \d matched them
        "3601002026000000001",
        "360100202600000000012",
    ],
)
def test_only_twenty_ascii_digits_are_a_card_number(number: str) -> None:
    card = {"number": "36010020260000000001", "holder_id": "H1", "issue_seq": 1, "class": "red"}
    assert parse_card(card | {"status": "active"}).number == card["number"]  # the control
    with pytest.raises(Rejected, match="20 digits"):
        parse_card(card | {"number": number, "status": "active"})
    with pytest.raises(Rejected):
        parse_deny({"seq": 1, "cards": [{"number": number, "status": "lost"}]})


@given(st.text(alphabet=st.characters(categories=["Nd"]), min_size=20, max_size=20))
def test_a_twenty_digit_number_is_taken_only_in_ascii(number: str) -> None:
    body = {"seq": 1, "cards": [{"number": number, "status": "lost"}]}
    if number.isascii():
        assert parse_deny(body)[1][0].number == number
    else:
        with pytest.raises(Rejected):
            parse_deny(body)
