"""The scanner's byte stream cut into codes (drivers/qr/lines.py): endings, refusals, and a
property over arbitrary byte streams cut anywhere."""

import itertools
import re

from hypothesis import given
from hypothesis import strategies as st

from drivers.qr.lines import LineSplitter, Refused, Why, refusal

MAX = 32


def feed_all(chunks: list[bytes], max_length: int = MAX) -> list[str | Refused]:
    splitter = LineSplitter(max_length)
    out: list[str | Refused] = []
    for chunk in chunks:
        out += splitter.feed(chunk)
    return out


def test_cr_lf_and_crlf_all_end_a_line() -> None:
    assert feed_all([b"one\rtwo\nthree\r\nfour\n\r"]) == ["one", "two", "three", "four"]


def test_a_partial_line_waits_for_its_ending() -> None:
    splitter = LineSplitter(MAX)
    assert splitter.feed(b"YKT1.ab") == []
    assert splitter.feed(b"c.de") == []
    assert splitter.feed(b"f\r") == ["YKT1.abc.def"]
    assert splitter.feed(b"\n") == []  # the LF of that CRLF is not an empty code


def test_a_line_of_max_length_passes_and_one_more_is_refused() -> None:
    exact = b"a" * MAX
    assert feed_all([exact + b"\n"]) == [exact.decode()]
    assert feed_all([exact + b"b\nnext\n"]) == [Refused(Why.OVERLONG, MAX + 1), "next"]


def test_an_endless_line_is_skipped_without_being_kept_then_the_next_arrives() -> None:
    splitter = LineSplitter(MAX)
    for _ in range(1000):
        assert splitter.feed(b"x" * 1000) == []
    assert len(splitter._line) == 0  # nothing of it kept
    assert splitter.feed(b"\nYKT1.ok\n") == [Refused(Why.OVERLONG, 1_000_000), "YKT1.ok"]


def test_bytes_that_are_not_printable_ascii_refuse_their_line_only() -> None:
    assert feed_all([b"bad\x00line\nYKT1.a\n\xff\xfe\r\ntab\there\nok\n"]) == [
        Refused(Why.GARBAGE, 8),
        "YKT1.a",
        Refused(Why.GARBAGE, 2),
        Refused(Why.GARBAGE, 8),
        "ok",
    ]


def test_utf8_is_refused_too() -> None:
    assert feed_all(["电子卡\n".encode()]) == [Refused(Why.GARBAGE, 9)]


def test_refusal_of_decoded_text() -> None:
    assert refusal("YKT1.abc.def", MAX) is None
    assert refusal("x" * (MAX + 1), MAX) is Why.OVERLONG
    assert refusal("电子卡", MAX) is Why.GARBAGE
    assert refusal("a\x07b", MAX) is Why.GARBAGE
    assert refusal("", MAX) is Why.GARBAGE


# -- the property ----------------------------------------------------------------------------

_ENDINGS = re.compile(rb"[\r\n]")
_PRINTABLE = re.compile(rb"[\x20-\x7e]+")


def oracle(stream: bytes, max_length: int = MAX) -> list[str | Refused]:
    """What the splitter must give, worked out on the whole stream at once."""
    out: list[str | Refused] = []
    for piece in _ENDINGS.split(stream)[:-1]:  # the last one has no ending yet
        if not piece:
            continue
        if len(piece) > max_length:
            out.append(Refused(Why.OVERLONG, len(piece)))
        elif _PRINTABLE.fullmatch(piece) is None:
            out.append(Refused(Why.GARBAGE, len(piece)))
        else:
            out.append(piece.decode("ascii"))
    return out


ending = st.sampled_from([b"\r", b"\n", b"\r\n"])
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1)
segment = st.one_of(
    st.tuples(printable.filter(lambda t: len(t) <= MAX).map(str.encode), ending).map(b"".join),
    st.tuples(
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=MAX + 1).map(
            str.encode
        ),
        ending,
    ).map(b"".join),
    st.binary(max_size=3 * MAX),  # garbage, endings and all
)


@st.composite
def cut(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    stream = b"".join(draw(st.lists(segment, max_size=20)))
    points = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    edges = [0, *points, len(stream)]
    return stream, [stream[a:b] for a, b in itertools.pairwise(edges)]


@given(cut())
def test_any_stream_cut_anywhere_gives_exactly_the_lines_it_holds(
    case: tuple[bytes, list[bytes]],
) -> None:
    stream, chunks = case
    got = feed_all(chunks)
    assert got == oracle(stream)
    # Every well-formed line delivered once and in order, whatever bad lines came before it.
    assert [line for line in got if isinstance(line, str)] == [
        line for line in oracle(stream) if isinstance(line, str)
    ]
