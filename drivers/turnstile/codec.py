"""Frames and messages of the turnstile board protocol (``docs/turnstile-protocol.md``).

Pure: no I/O, no clock, no threads, so every byte on the wire can be asserted in unit tests and
the same code serves the driver (:mod:`drivers.turnstile.board`) and the simulated board
(:mod:`devtools.simboard`).

On the wire a frame is ``STX | stuffed(LEN CMD SEQ PAYLOAD CRC_HI CRC_LO) | ETX``. Byte stuffing
(rather than trusting LEN alone) means a raw STX or ETX never occurs inside a frame, so the
decoder resynchronises on the very next STX after any garbage without waiting for a corrupted
length to be "filled"; LEN stays in the frame as a second check next to the CRC.

pyserial's ``serial.threaded.FramedPacket`` splits on STX/ETX too, but has no escaping and no
CRC, so a payload byte equal to ETX would cut a frame in two; hence this small hand-written layer.
The CRC itself is the standard library's (``binascii.crc_hqx``), not hand-written.
"""

import binascii
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum, IntFlag, StrEnum
from typing import ClassVar

STX = 0x02
ETX = 0x03
DLE = 0x10
_ESCAPE_XOR = 0x20
_SPECIAL = frozenset({STX, ETX, DLE})

MAX_PAYLOAD = 32
_HEADER = 3  # LEN CMD SEQ
_CRC = 2
_MAX_BODY = _HEADER + MAX_PAYLOAD + _CRC
_KEEP = 64  # bytes of a discarded run kept for the log line; the size is always exact


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR.

    ``crc16(b"123456789") == 0x29B1``.
    """
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True, slots=True)
class Frame:
    """One checked frame, before its payload is interpreted."""

    command: int
    seq: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.command <= 0xFF:
            raise ValueError(f"command {self.command} is not one byte")
        if not 0 <= self.seq <= 0xFF:
            raise ValueError(f"seq {self.seq} is not one byte")
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")


def frame_body(frame: Frame) -> bytes:
    """LEN CMD SEQ PAYLOAD CRC, unstuffed: what the CRC protects plus the CRC (big-endian)."""
    head = bytes((len(frame.payload), frame.command, frame.seq)) + frame.payload
    return head + crc16(head).to_bytes(_CRC, "big")


def wrap_body(body: bytes) -> bytes:
    """Stuff ``body`` and put it between STX and ETX."""
    out = bytearray((STX,))
    for byte in body:
        if byte in _SPECIAL:
            out += bytes((DLE, byte ^ _ESCAPE_XOR))
        else:
            out.append(byte)
    out.append(ETX)
    return bytes(out)


def encode_frame(frame: Frame) -> bytes:
    return wrap_body(frame_body(frame))


class DiscardReason(StrEnum):
    """Why bytes from the line were dropped instead of becoming a frame or a message."""

    GARBAGE = "garbage"  # bytes outside any frame (line noise, a board's boot banner)
    TRUNCATED = "truncated"  # a new STX arrived before the frame's ETX
    BAD_ESCAPE = "bad_escape"  # DLE followed by a byte that is never escaped
    TOO_LONG = "too_long"  # more bytes than the longest legal frame, no ETX yet
    BAD_LENGTH = "bad_length"  # LEN disagrees with the bytes between STX and ETX
    BAD_CRC = "bad_crc"
    UNKNOWN_COMMAND = "unknown_command"  # well-formed frame, command this side does not know
    BAD_PAYLOAD = "bad_payload"  # known command, payload of the wrong size or out of range


@dataclass(frozen=True, slots=True)
class Discarded:
    """Bytes the decoder dropped; ``data`` keeps at most 64 of them for the log, ``size`` all."""

    reason: DiscardReason
    data: bytes
    size: int


def _discarded(reason: DiscardReason, data: bytes | bytearray) -> Discarded:
    return Discarded(reason, bytes(data[:_KEEP]), len(data))


class FrameDecoder:
    """Incremental decoder: feed any chunks, get frames and discard reports; never raises."""

    def __init__(self) -> None:
        self._body = bytearray()
        self._in_frame = False
        self._escaped = False
        self._garbage = bytearray()
        self._garbage_size = 0

    def feed(self, data: bytes) -> list[Frame | Discarded]:
        out: list[Frame | Discarded] = []
        for byte in data:
            if byte == STX:
                # A raw STX always starts a frame, whatever state we are in: that is the resync.
                self._flush_garbage(out)
                if self._in_frame:
                    out.append(_discarded(DiscardReason.TRUNCATED, bytes((STX,)) + self._body))
                self._start()
            elif not self._in_frame:
                self._garbage_size += 1
                if len(self._garbage) < _KEEP:
                    self._garbage.append(byte)
            elif byte == ETX:
                out.append(self._finish())
            elif self._escaped:
                self._escaped = False
                if byte ^ _ESCAPE_XOR in _SPECIAL:
                    self._append(byte ^ _ESCAPE_XOR, out)
                else:
                    out.append(self._drop(DiscardReason.BAD_ESCAPE, bytes((DLE, byte))))
            elif byte == DLE:
                self._escaped = True
            else:
                self._append(byte, out)
        self._flush_garbage(out)
        return out

    def _start(self) -> None:
        self._body.clear()
        self._in_frame = True
        self._escaped = False

    def _append(self, byte: int, out: list[Frame | Discarded]) -> None:
        self._body.append(byte)
        if len(self._body) > _MAX_BODY:
            out.append(self._drop(DiscardReason.TOO_LONG, b""))

    def _drop(self, reason: DiscardReason, extra: bytes) -> Discarded:
        raw = bytes((STX,)) + self._body + extra
        self._in_frame = False
        self._escaped = False
        self._body.clear()
        return _discarded(reason, raw)

    def _finish(self) -> Frame | Discarded:
        body = bytes(self._body)
        if self._escaped:
            return self._drop(DiscardReason.BAD_ESCAPE, bytes((DLE, ETX)))
        self._in_frame = False
        self._body.clear()
        raw = bytes((STX,)) + body + bytes((ETX,))
        if len(body) < _HEADER + _CRC or body[0] != len(body) - _HEADER - _CRC:
            return _discarded(DiscardReason.BAD_LENGTH, raw)
        if crc16(body[:-_CRC]) != int.from_bytes(body[-_CRC:], "big"):
            return _discarded(DiscardReason.BAD_CRC, raw)
        return Frame(command=body[1], seq=body[2], payload=body[_HEADER:-_CRC])

    def _flush_garbage(self, out: list[Frame | Discarded]) -> None:
        if self._garbage_size:
            out.append(Discarded(DiscardReason.GARBAGE, bytes(self._garbage), self._garbage_size))
            self._garbage.clear()
            self._garbage_size = 0


class Command(IntEnum):
    """Command byte: 0x0_ host requests, 0x8_ board replies, 0xC_ unsolicited board events."""

    OPEN = 0x01
    STATUS = 0x02
    EVENT_ACK = 0x03
    MODE = 0x04
    OPEN_ACK = 0x81
    STATUS_REPLY = 0x82
    MODE_ACK = 0x84
    PASSAGE = 0xC1
    DOOR_FORCED = 0xC2
    HELD_OPEN = 0xC3
    TAMPER = 0xC4


class Direction(IntEnum):
    EITHER = 0x00
    IN = 0x01
    OUT = 0x02


class OpenResult(IntEnum):
    ACCEPTED = 0x00
    BUSY = 0x01  # an opening is still in progress
    REFUSED = 0x02  # alarm or tamper state: the board will not release the gate


class GateMode(IntEnum):
    NORMAL = 0x00  # OPEN releases the gate for one passage
    FREE = 0x01  # held released both ways until told otherwise (evacuation)
    LOCKED = 0x02  # every OPEN is refused (lockdown)


class ModeResult(IntEnum):
    # No BUSY: a mode is a standing state, never queued behind an opening.
    ACCEPTED = 0x00
    REFUSED = 0x02  # e.g. free while tamper is active: the serial line itself may be compromised


class Alarm(IntFlag):
    NONE = 0
    FORCED = 0x01
    HELD_OPEN = 0x02
    TAMPER = 0x04


def _exact(payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise ValueError(f"payload is {len(payload)} bytes, expected {size}")


@dataclass(frozen=True, slots=True)
class OpenRequest:
    """Host -> board: release the gate for one passage for ``units`` x 100 ms."""

    COMMAND: ClassVar[Command] = Command.OPEN
    seq: int
    direction: Direction
    units: int

    def __post_init__(self) -> None:
        if not 1 <= self.units <= 0xFFFF:
            raise ValueError(f"open duration {self.units} x 100 ms is outside 1..65535")

    def payload(self) -> bytes:
        return bytes((self.direction,)) + self.units.to_bytes(2, "big")

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "OpenRequest":
        _exact(payload, 3)
        return cls(seq, Direction(payload[0]), int.from_bytes(payload[1:3], "big"))


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """Host -> board: report door sensor, passage counters and alarm flags."""

    COMMAND: ClassVar[Command] = Command.STATUS
    seq: int

    def payload(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "StatusRequest":
        _exact(payload, 0)
        return cls(seq)


@dataclass(frozen=True, slots=True)
class EventAck:
    """Host -> board: event ``seq`` arrived; the board stops repeating it."""

    COMMAND: ClassVar[Command] = Command.EVENT_ACK
    seq: int

    def payload(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "EventAck":
        _exact(payload, 0)
        return cls(seq)


@dataclass(frozen=True, slots=True)
class ModeRequest:
    """Host -> board: enter ``mode`` and stay in it; applying the same mode again is harmless."""

    COMMAND: ClassVar[Command] = Command.MODE
    seq: int
    mode: GateMode

    def payload(self) -> bytes:
        return bytes((self.mode,))

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "ModeRequest":
        _exact(payload, 1)
        return cls(seq, GateMode(payload[0]))


@dataclass(frozen=True, slots=True)
class OpenAck:
    """Board -> host: answer to the OPEN with the same ``seq``."""

    COMMAND: ClassVar[Command] = Command.OPEN_ACK
    seq: int
    result: OpenResult = OpenResult.ACCEPTED

    def payload(self) -> bytes:
        return bytes((self.result,))

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "OpenAck":
        _exact(payload, 1)
        return cls(seq, OpenResult(payload[0]))


@dataclass(frozen=True, slots=True)
class ModeAck:
    """Board -> host: answer to the MODE with the same ``seq``."""

    COMMAND: ClassVar[Command] = Command.MODE_ACK
    seq: int
    result: ModeResult = ModeResult.ACCEPTED

    def payload(self) -> bytes:
        return bytes((self.result,))

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "ModeAck":
        _exact(payload, 1)
        return cls(seq, ModeResult(payload[0]))


@dataclass(frozen=True, slots=True)
class StatusReply:
    """Board -> host: answer to the STATUS with the same ``seq``; counters wrap at 2**32."""

    COMMAND: ClassVar[Command] = Command.STATUS_REPLY
    seq: int
    door_open: bool
    passages_in: int
    passages_out: int
    alarms: Alarm = Alarm.NONE

    def __post_init__(self) -> None:
        for count in (self.passages_in, self.passages_out):
            if not 0 <= count <= 0xFFFFFFFF:
                raise ValueError(f"passage counter {count} is not 32 bits")

    def payload(self) -> bytes:
        return (
            bytes((int(self.door_open),))
            + self.passages_in.to_bytes(4, "big")
            + self.passages_out.to_bytes(4, "big")
            + bytes((self.alarms & 0xFF,))
        )

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "StatusReply":
        _exact(payload, 10)
        if payload[0] > 1:
            raise ValueError(f"door sensor byte {payload[0]:#04x} is neither 0 nor 1")
        return cls(
            seq,
            door_open=bool(payload[0]),
            passages_in=int.from_bytes(payload[1:5], "big"),
            passages_out=int.from_bytes(payload[5:9], "big"),
            alarms=Alarm(payload[9]),
        )


@dataclass(frozen=True, slots=True)
class Passage:
    """Board event: someone went through; ``opening_seq`` is the OPEN's seq (0: no opening)."""

    COMMAND: ClassVar[Command] = Command.PASSAGE
    seq: int
    direction: Direction
    opening_seq: int

    def __post_init__(self) -> None:
        if not 0 <= self.opening_seq <= 0xFF:
            raise ValueError(f"opening seq {self.opening_seq} is not one byte")

    def payload(self) -> bytes:
        return bytes((self.direction, self.opening_seq))

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "Passage":
        _exact(payload, 2)
        return cls(seq, Direction(payload[0]), payload[1])


@dataclass(frozen=True, slots=True)
class DoorForced:
    """Board event: the door or arm moved with no opening in progress."""

    COMMAND: ClassVar[Command] = Command.DOOR_FORCED
    seq: int

    def payload(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "DoorForced":
        _exact(payload, 0)
        return cls(seq)


@dataclass(frozen=True, slots=True)
class HeldOpen:
    """Board event: the door stayed open past the board's held-open limit."""

    COMMAND: ClassVar[Command] = Command.HELD_OPEN
    seq: int

    def payload(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "HeldOpen":
        _exact(payload, 0)
        return cls(seq)


@dataclass(frozen=True, slots=True)
class Tamper:
    """Board event: the enclosure's tamper switch opened."""

    COMMAND: ClassVar[Command] = Command.TAMPER
    seq: int

    def payload(self) -> bytes:
        return b""

    @classmethod
    def parse(cls, seq: int, payload: bytes) -> "Tamper":
        _exact(payload, 0)
        return cls(seq)


Message = (
    OpenRequest
    | StatusRequest
    | EventAck
    | ModeRequest
    | OpenAck
    | StatusReply
    | ModeAck
    | Passage
    | DoorForced
    | HeldOpen
    | Tamper
)
BoardEvent = Passage | DoorForced | HeldOpen | Tamper

_PARSERS: dict[int, Callable[[int, bytes], Message]] = {
    Command.OPEN: OpenRequest.parse,
    Command.STATUS: StatusRequest.parse,
    Command.EVENT_ACK: EventAck.parse,
    Command.MODE: ModeRequest.parse,
    Command.OPEN_ACK: OpenAck.parse,
    Command.STATUS_REPLY: StatusReply.parse,
    Command.MODE_ACK: ModeAck.parse,
    Command.PASSAGE: Passage.parse,
    Command.DOOR_FORCED: DoorForced.parse,
    Command.HELD_OPEN: HeldOpen.parse,
    Command.TAMPER: Tamper.parse,
}


def to_frame(message: Message) -> Frame:
    return Frame(message.COMMAND, message.seq, message.payload())


def encode(message: Message) -> bytes:
    """The bytes to write for ``message``."""
    return encode_frame(to_frame(message))


def parse(frame: Frame) -> Message | Discarded:
    """Interpret a checked frame; a frame this side cannot use is reported, not raised."""
    parser = _PARSERS.get(frame.command)
    raw = encode_frame(frame)
    if parser is None:
        return _discarded(DiscardReason.UNKNOWN_COMMAND, raw)
    try:
        return parser(frame.seq, frame.payload)
    except ValueError:
        return _discarded(DiscardReason.BAD_PAYLOAD, raw)


class Decoder:
    """Bytes in, messages (or discard reports) out: :class:`FrameDecoder` then :func:`parse`."""

    def __init__(self) -> None:
        self._frames = FrameDecoder()

    def feed(self, data: bytes) -> list[Message | Discarded]:
        return [
            item if isinstance(item, Discarded) else parse(item) for item in self._frames.feed(data)
        ]
