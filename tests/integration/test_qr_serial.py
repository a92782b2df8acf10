"""SerialQrReader (pyserial) reading a scanner module played on the far end of a real pty pair."""

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from drivers.qr.interface import QrEvent, QrPresented, QrRemoved
from drivers.qr.serial import SerialQrReader
from drivers.qr.settings import QrSettings
from tests.contract.test_qr_reader import PtyScanner, connected

pytestmark = pytest.mark.integration

MAX = 64
GONE = 0.3
WAIT = 5.0


def eventually(check: Callable[[], bool], within: float = WAIT) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _ours() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("qr-serial-")}


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = _ours()
    yield
    assert eventually(lambda: _ours() <= before, within=2.0), _ours()


@pytest.fixture
def scanner(tmp_path: Path) -> Iterator[PtyScanner]:
    made = PtyScanner(tmp_path / "ttyQR")
    yield made
    made.close()


def open_reader(scanner: PtyScanner, gone: float = GONE) -> SerialQrReader:
    reader = SerialQrReader(
        QrSettings(
            driver="serial",
            url=str(scanner.link),
            gone_seconds=gone,
            max_length=MAX,
            reconnect_max_seconds=0.2,
        )
    )
    connected(reader)
    return reader


@pytest.fixture
def reader(scanner: PtyScanner) -> Iterator[SerialQrReader]:
    made = open_reader(scanner)
    yield made
    made.close()


def presented(reader: SerialQrReader, count: int, within: float = WAIT) -> list[str]:
    """The texts of the next ``count`` presentations (removals in between skipped)."""
    texts: list[str] = []
    deadline = time.monotonic() + within
    while len(texts) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {texts} within {within} s"
        event = reader.next_event(min(remaining, 0.2))
        if isinstance(event, QrPresented):
            assert event.source == "serial"
            texts.append(event.text)
    return texts


def quiet(reader: SerialQrReader, seconds: float) -> list[QrEvent]:
    events = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        event = reader.next_event(remaining)
        if event is not None:
            events.append(event)
    return events


def test_cr_lf_and_crlf_endings(scanner: PtyScanner, reader: SerialQrReader) -> None:
    scanner.write(b"YKT1.cr\rYKT1.lf\nYKT1.crlf\r\n")
    assert presented(reader, 3) == ["YKT1.cr", "YKT1.lf", "YKT1.crlf"]


def test_an_overlong_line_is_refused_and_the_next_arrives(
    scanner: PtyScanner, reader: SerialQrReader
) -> None:
    scanner.write(b"Y" * (MAX + 1) + b"\r\nYKT1.after\r\n")
    scanner.write(b"Z" * 10_000 + b"\nYKT1.after-a-long-one\n")
    assert presented(reader, 2) == ["YKT1.after", "YKT1.after-a-long-one"]
    assert "overlong 2" in reader.health().detail


def test_garbage_is_refused_and_nothing_after_it_lost(
    scanner: PtyScanner, reader: SerialQrReader
) -> None:
    scanner.write(b"\x00\xff\x1b[2J\r\nYKT1.a\r\n\x80abc\nYKT1.b\n" + "码\n".encode())
    scanner.write(b"YKT1.c\r\n")
    assert presented(reader, 3) == ["YKT1.a", "YKT1.b", "YKT1.c"]
    assert "garbage 3" in reader.health().detail


def test_a_code_split_over_many_writes(scanner: PtyScanner, reader: SerialQrReader) -> None:
    code = b"YKT1.eyJoIjoiSDEifQ.c2ln\r\n"
    for byte in code:
        scanner.write(bytes([byte]))
        time.sleep(0.002)
    assert presented(reader, 1) == [code.strip().decode()]


def test_repeats_are_one_presentation_and_silence_removes_it(
    scanner: PtyScanner, reader: SerialQrReader
) -> None:
    for _ in range(8):  # a scanner in continuous mode, every 0.1 s while the phone is held
        scanner.write(b"YKT1.held\r\n")
        time.sleep(0.1)
    events = quiet(reader, 0.05)
    assert events == [QrPresented("YKT1.held", "serial")]
    started = time.monotonic()
    event = reader.next_event(WAIT)
    assert event == QrRemoved()
    assert time.monotonic() - started < GONE + 1.0
    scanner.write(b"YKT1.held\r\n")  # shown again after it was taken away: a new tap
    assert presented(reader, 1) == ["YKT1.held"]


def test_the_port_unplugged_and_back(scanner: PtyScanner, reader: SerialQrReader) -> None:
    scanner.write(b"YKT1.before\r\n")
    assert presented(reader, 1) == ["YKT1.before"]
    scanner.unplug()
    assert eventually(lambda: not reader.health().ok)
    assert reader.health().state in ("disconnected", "unreachable")
    assert reader.next_event(WAIT) == QrRemoved()  # the code went with the scanner
    scanner.plug()
    assert eventually(lambda: reader.health().ok), reader.health()
    scanner.write(b"YKT1.after\r\n")
    assert presented(reader, 1) == ["YKT1.after"]


def test_a_port_that_is_not_there_is_retried(tmp_path: Path) -> None:
    reader = SerialQrReader(
        QrSettings(driver="serial", url=str(tmp_path / "ttyNONE"), reconnect_max_seconds=0.2)
    )
    try:
        assert eventually(lambda: reader.health().state == "unreachable")
        assert not reader.health().ok
        assert reader.next_event(0.1) is None
    finally:
        reader.close()


# -- the property --------------------------------------------------------------------------

_ENDINGS = re.compile(rb"[\r\n]")
_PRINTABLE = re.compile(rb"[\x20-\x7e]+")


def well_formed(stream: bytes) -> list[str]:
    """The codes ``stream`` holds: printable ASCII lines of at most MAX characters."""
    pieces = _ENDINGS.split(stream)[:-1]
    return [p.decode() for p in pieces if p and len(p) <= MAX and _PRINTABLE.fullmatch(p)]


ending = st.sampled_from([b"\r", b"\n", b"\r\n"])
# No "~": it marks the end of each example, so nothing generated can pass for it.
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7D), min_size=1)
segment = st.one_of(
    st.tuples(printable.filter(lambda t: len(t) <= MAX).map(str.encode), ending).map(b"".join),
    st.tuples(printable.filter(lambda t: len(t) > MAX).map(str.encode), ending).map(b"".join),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7D), min_size=MAX + 1).map(
        lambda t: t.encode() + b"\n"
    ),
    st.binary(max_size=2 * MAX),  # garbage, endings and all
)


@st.composite
def cut(draw: st.DrawFn) -> list[bytes]:
    stream = b"".join(draw(st.lists(segment, max_size=12)))
    points = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    edges = [0, *points, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


def test_any_byte_stream_delivers_each_code_once(scanner: PtyScanner) -> None:
    # One port for every example (opening one takes a while); each example ends with a marker
    # line, so its codes are told apart from the next one's. gone_seconds is long, so a code is
    # "the same presentation" only when it directly follows itself: exactly what is expected.
    reader = open_reader(scanner, gone=10.0)
    examples = itertools.count()

    # No shrinking: a failing example here waits out its marker, and tests/unit/test_qr_lines.py
    # shrinks the same streams through the same splitter in milliseconds.
    @settings(
        max_examples=30,
        deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )
    @given(cut())
    def check(chunks: list[bytes]) -> None:
        marker = f"~{next(examples)}~"
        for chunk in chunks:
            scanner.write(chunk)
        scanner.write(b"\n" + marker.encode() + b"\r\n")
        stream = b"".join(chunks) + b"\n" + marker.encode() + b"\n"
        expected = [text for text, _ in itertools.groupby(well_formed(stream))]
        got: list[str] = []
        while not got or got[-1] != marker:
            got += presented(reader, 1, within=2.0)
        assert got == expected
        assert reader.health().ok

    try:
        check()
    finally:
        reader.close()
