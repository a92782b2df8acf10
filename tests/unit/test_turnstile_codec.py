"""Turnstile board codec: exact bytes per frame, the CRC, a decoder that survives garbage."""

import binascii
import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.turnstile.codec import (
    Alarm,
    Command,
    Decoder,
    Direction,
    Discarded,
    DiscardReason,
    DoorForced,
    EventAck,
    Frame,
    FrameDecoder,
    GateMode,
    HeldOpen,
    Message,
    ModeAck,
    ModeRequest,
    ModeResult,
    OpenAck,
    OpenRequest,
    OpenResult,
    Passage,
    StatusReply,
    StatusRequest,
    Tamper,
    crc16,
    encode,
    encode_frame,
    frame_body,
    to_frame,
    wrap_body,
)

PROTOCOL_DOC = Path(__file__).resolve().parents[2] / "docs" / "turnstile-protocol.md"


def reference_crc(data: bytes) -> int:
    """Bit-by-bit CRC-16/CCITT-FALSE, independent of the codec's table-driven binascii call."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def wire(text: str) -> bytes:
    return bytes.fromhex(text)


def decode_all(data: bytes) -> list[Message | Discarded]:
    return Decoder().feed(data)


# -- CRC ---------------------------------------------------------------------------------------


def test_crc_check_value() -> None:
    # The catalogue check value of CRC-16/CCITT-FALSE.
    assert crc16(b"123456789") == 0x29B1
    assert reference_crc(b"123456789") == 0x29B1


def test_crc_of_the_documented_open_frame() -> None:
    # LEN CMD SEQ PAYLOAD of "OPEN seq=1 in 5.0 s"
    assert crc16(wire("03 01 01 01 00 32")) == 0x3D34


@given(st.binary(max_size=64))
def test_crc_matches_the_bitwise_reference(data: bytes) -> None:
    assert crc16(data) == reference_crc(data)


# -- byte-exact frames -------------------------------------------------------------------------

FRAMES: list[tuple[Message, str]] = [
    # OPEN seq=1, direction in, 50 x 100 ms; LEN 03 is stuffed as 10 23
    (OpenRequest(1, Direction.IN, 50), "02 10 23 01 01 01 00 32 3D 34 03"),
    # OPEN_ACK seq=1, accepted
    (OpenAck(1), "02 01 81 01 00 CD 2F 03"),
    # OPEN seq=2, direction out (02 -> 10 22), 30 x 100 ms
    (OpenRequest(2, Direction.OUT, 30), "02 10 23 01 10 22 10 22 00 1E 1A 56 03"),
    # OPEN_ACK seq=2, refused (02 -> 10 22)
    (OpenAck(2, OpenResult.REFUSED), "02 01 81 10 22 10 22 B8 3E 03"),
    # OPEN seq=16 (10 -> 10 30), either direction, 3 x 100 ms (03 -> 10 23)
    (OpenRequest(16, Direction.EITHER, 3), "02 10 23 01 10 30 00 00 10 23 41 65 03"),
    # STATUS seq=3
    (StatusRequest(3), "02 00 10 22 10 23 9A 9D 03"),
    # STATUS_REPLY seq=3: door closed, 1234 in, 567 out, no alarms
    (
        StatusReply(3, door_open=False, passages_in=1234, passages_out=567),
        "02 0A 82 10 23 00 00 00 04 D2 00 00 10 22 37 00 61 71 03",
    ),
    # STATUS_REPLY seq=4: door open, 2 in, 515 out, forced + tamper
    (
        StatusReply(4, True, 2, 515, Alarm.FORCED | Alarm.TAMPER),
        "02 0A 82 04 01 00 00 00 10 22 00 00 10 22 10 23 05 DB 0F 03",
    ),
    # PASSAGE event seq=7: direction in, for the opening with seq 1
    (Passage(7, Direction.IN, 1), "02 10 22 C1 07 01 01 36 1F 03"),
    # EVENT_ACK for event seq=7
    (EventAck(7), "02 00 10 23 07 E9 28 03"),
    # DOOR_FORCED event seq=8
    (DoorForced(8), "02 00 C2 08 3D A2 03"),
    # HELD_OPEN event seq=9
    (HeldOpen(9), "02 00 C3 09 1E B2 03"),
    # TAMPER event seq=16 (10 -> 10 30)
    (Tamper(16), "02 00 C4 10 30 04 3D 03"),
    # MODE seq=5: free
    (ModeRequest(5, GateMode.FREE), "02 01 04 05 01 C1 60 03"),
    # MODE_ACK seq=5: accepted
    (ModeAck(5), "02 01 84 05 00 EA 1B 03"),
    # MODE seq=6: locked (02 -> 10 22)
    (ModeRequest(6, GateMode.LOCKED), "02 01 04 06 10 22 A4 50 03"),
    # MODE_ACK seq=8: refused (02 -> 10 22)
    (ModeAck(8, ModeResult.REFUSED), "02 01 84 08 10 22 BC 05 03"),
]


@pytest.mark.parametrize(("message", "hex_frame"), FRAMES, ids=lambda v: type(v).__name__)
def test_encode_is_byte_exact(message: Message, hex_frame: str) -> None:
    assert encode(message) == wire(hex_frame)


@pytest.mark.parametrize(("message", "hex_frame"), FRAMES, ids=lambda v: type(v).__name__)
def test_decode_gives_the_message_back(message: Message, hex_frame: str) -> None:
    assert decode_all(wire(hex_frame)) == [message]


def test_every_example_in_the_protocol_doc_decodes() -> None:
    lines = re.findall(r"wire: ([0-9A-F ]+)", PROTOCOL_DOC.read_text(encoding="utf-8"))
    assert len(lines) >= len(FRAMES)
    documented = {wire(line.strip()) for line in lines}
    assert documented == {wire(hex_frame) for _, hex_frame in FRAMES}
    for data in documented:
        (item,) = decode_all(data)
        assert not isinstance(item, Discarded), data.hex(" ")


def test_mode_frame_bytes_with_the_standard_library_crc() -> None:
    # LEN=1 CMD=MODE SEQ=7 mode=normal; none of these bytes needs stuffing.
    head = bytes((0x01, 0x04, 0x07, 0x00))
    crc = binascii.crc_hqx(head, 0xFFFF)
    expected = bytes((0x02,)) + head + crc.to_bytes(2, "big") + bytes((0x03,))
    assert 0x02 not in crc.to_bytes(2, "big") and 0x03 not in crc.to_bytes(2, "big")
    assert encode(ModeRequest(7, GateMode.NORMAL)) == expected
    assert Command.MODE == 0x04 and Command.MODE_ACK == 0x84


@pytest.mark.parametrize(
    ("command", "payload"),
    [
        (Command.MODE, b"\x03"),  # no mode 3
        (Command.MODE, b"\xff"),
        (Command.MODE, b""),  # the mode byte is missing
        (Command.MODE, b"\x01\x00"),  # one byte too many
        (Command.MODE_ACK, b"\x01"),  # "busy" is an OPEN result, not a mode result
        (Command.MODE_ACK, b""),
    ],
    ids=["mode3", "mode255", "empty", "long", "ack-busy", "ack-empty"],
)
def test_bad_mode_payloads_are_dropped(command: Command, payload: bytes) -> None:
    (item,) = decode_all(encode_frame(Frame(command, 9, payload)))
    assert isinstance(item, Discarded)
    assert item.reason is DiscardReason.BAD_PAYLOAD


def test_crc_is_big_endian_over_the_unstuffed_body() -> None:
    body = frame_body(Frame(0xC2, 0x08))
    assert body == wire("00 C2 08 3D A2")
    assert reference_crc(body[:-2]) == 0x3DA2


def test_every_special_byte_is_stuffed() -> None:
    # A payload of STX ETX DLE comes out as three escape pairs; nothing raw between the ends.
    data = encode_frame(Frame(0x7E, 0x01, bytes((0x02, 0x03, 0x10))))
    inner = data[1:-1]
    assert wire("10 22 10 23 10 30") in inner
    assert 0x02 not in inner
    assert 0x03 not in inner


def test_wrap_body_frames_and_stuffs() -> None:
    assert wrap_body(wire("10 02 03 41")) == wire("02 10 30 10 22 10 23 41 03")


def test_invalid_values_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="one byte"):
        Frame(0x01, 256)
    with pytest.raises(ValueError, match="exceeds"):
        Frame(0x01, 1, bytes(33))
    with pytest.raises(ValueError, match=r"1\.\.65535"):
        OpenRequest(1, Direction.IN, 0)
    with pytest.raises(ValueError, match="32 bits"):
        StatusReply(1, False, 2**32, 0)


# -- what the decoder drops, and why -----------------------------------------------------------

OPEN_1 = wire("02 10 23 01 01 01 00 32 3D 34 03")


@pytest.mark.parametrize(
    ("hex_bytes", "reason"),
    [
        # noise outside any frame
        ("FF 00 41", DiscardReason.GARBAGE),
        # OPEN seq=1 cut short by a new STX (the new frame is then left unfinished)
        ("02 10 23 01 01 01 02", DiscardReason.TRUNCATED),
        # DLE followed by a byte that is never escaped
        ("02 00 10 41 03", DiscardReason.BAD_ESCAPE),
        # DLE right before ETX
        ("02 00 C2 08 3D A2 10 03", DiscardReason.BAD_ESCAPE),
        # 38 body bytes and still no ETX
        ("02" + " 41" * 38, DiscardReason.TOO_LONG),
        # LEN says 1 but there is no payload byte
        ("02 01 C2 08 3D A2 03", DiscardReason.BAD_LENGTH),
        # fewer bytes than LEN CMD SEQ CRC
        ("02 00 C2 03", DiscardReason.BAD_LENGTH),
        # DOOR_FORCED seq=8 with the CRC's low byte flipped
        ("02 00 C2 08 3D A3 03", DiscardReason.BAD_CRC),
    ],
)
def test_bad_input_is_reported_not_raised(hex_bytes: str, reason: DiscardReason) -> None:
    first = FrameDecoder().feed(wire(hex_bytes))[0]
    assert isinstance(first, Discarded)
    assert first.reason is reason


def test_unknown_command_and_bad_payload_are_reported() -> None:
    # A well-formed frame with command 0x7E, then an OPEN_ACK whose result byte is 0x09.
    unknown = encode_frame(Frame(0x7E, 1))
    bad_result = encode_frame(Frame(0x81, 1, b"\x09"))
    items = decode_all(unknown + bad_result)
    assert [i.reason for i in items if isinstance(i, Discarded)] == [
        DiscardReason.UNKNOWN_COMMAND,
        DiscardReason.BAD_PAYLOAD,
    ]
    assert len(items) == 2


def test_garbage_counts_every_byte_but_keeps_only_a_sample() -> None:
    (item,) = FrameDecoder().feed(bytes(1000))
    assert isinstance(item, Discarded)
    assert item.size == 1000
    assert len(item.data) == 64


def test_resync_on_the_next_stx_after_a_broken_frame() -> None:
    # A frame cut short, garbage, then OPEN seq=1 intact.
    items = decode_all(wire("02 00 C2 41 42") + OPEN_1)
    assert items[-1] == OpenRequest(1, Direction.IN, 50)
    assert [i.reason for i in items[:-1] if isinstance(i, Discarded)] == [DiscardReason.TRUNCATED]


# -- properties --------------------------------------------------------------------------------

seqs = st.integers(0, 255)
directions = st.sampled_from(Direction)
counters = st.integers(0, 2**32 - 1)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(OpenRequest, seqs, directions, st.integers(1, 0xFFFF)),
    st.builds(StatusRequest, seqs),
    st.builds(EventAck, seqs),
    st.builds(OpenAck, seqs, st.sampled_from(OpenResult)),
    st.builds(StatusReply, seqs, st.booleans(), counters, counters, st.integers(0, 255).map(Alarm)),
    st.builds(Passage, seqs, directions, seqs),
    st.builds(DoorForced, seqs),
    st.builds(HeldOpen, seqs),
    st.builds(Tamper, seqs),
    st.builds(ModeRequest, seqs, st.sampled_from(GateMode)),
    st.builds(ModeAck, seqs, st.sampled_from(ModeResult)),
)


def feed_in_chunks(data: bytes, cuts: list[int]) -> list[Message | Discarded]:
    decoder = Decoder()
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    out: list[Message | Discarded] = []
    for start, end in itertools.pairwise(bounds):
        out += decoder.feed(data[start:end])
    return out


def is_subsequence(wanted: list[Message], got: list[Message]) -> bool:
    rest = iter(got)
    return all(any(w == g for g in rest) for w in wanted)


@given(st.lists(messages, max_size=20), st.lists(st.integers(0, 10_000), max_size=30))
def test_round_trip_in_any_chunking(sent: list[Message], cuts: list[int]) -> None:
    stream = b"".join(encode(m) for m in sent)
    assert feed_in_chunks(stream, cuts) == sent


@given(st.lists(st.binary(max_size=200), max_size=10))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    decoder = Decoder()
    for chunk in chunks:
        for item in decoder.feed(chunk):
            # Whatever is not reported as dropped is a well-formed message that re-encodes.
            assert isinstance(item, Discarded) or decode_all(encode(item)) == [item]


@given(
    st.lists(st.tuples(st.binary(max_size=40), messages), min_size=1, max_size=10),
    st.lists(st.integers(0, 10_000), max_size=20),
)
def test_every_frame_after_garbage_is_recovered(
    pieces: list[tuple[bytes, Message]], cuts: list[int]
) -> None:
    stream = b"".join(garbage + encode(message) for garbage, message in pieces)
    got = [item for item in feed_in_chunks(stream, cuts) if not isinstance(item, Discarded)]
    sent = [message for _, message in pieces]
    assert is_subsequence(sent, got)
    # Extra messages could only come from garbage that happens to be a valid frame, STX included.
    assert len(got) - len(sent) <= sum(garbage.count(0x02) for garbage, _ in pieces)


@given(
    st.lists(messages, min_size=2, max_size=8),
    st.data(),
)
def test_a_corrupted_frame_does_not_take_its_neighbours_with_it(
    sent: list[Message], data: st.DataObject
) -> None:
    victim = data.draw(st.integers(0, len(sent) - 1), label="victim")
    frames = [bytearray(encode(m)) for m in sent]
    position = data.draw(st.integers(0, len(frames[victim]) - 1), label="position")
    frames[victim][position] = data.draw(st.integers(0, 255), label="value")
    got = [item for item in decode_all(b"".join(frames)) if not isinstance(item, Discarded)]
    others = [m for i, m in enumerate(sent) if i != victim]
    # The frame after the victim survives whatever the corruption did to the victim's end.
    assert is_subsequence(others, got)


@given(messages, st.integers(1, 255), st.sampled_from([-1, -2]))
def test_any_crc_damage_is_detected(message: Message, flip: int, index: int) -> None:
    body = bytearray(frame_body(to_frame(message)))
    body[index] ^= flip
    (item,) = decode_all(wrap_body(bytes(body)))
    assert isinstance(item, Discarded)
    assert item.reason is DiscardReason.BAD_CRC
