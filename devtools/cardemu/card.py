"""An emulated 一卡通 CPU card implementing the card profile, with fault modes for tests.

The card holds an application (selected by AID) with the public info file at SFI 0x15, an
optional holder file at SFI 0x16, and one AES-128 card key for INTERNAL AUTHENTICATE. Like the
reader of a real contactless card, it also answers the PC/SC GET DATA ``FF CA`` with its UID.
"""

import time
from dataclasses import dataclass, field
from datetime import date

from devtools.cardemu.vpcd import make_atr
from drivers.cardapp import APPLICATION_TYPE_V1, DEFAULT_AID, PUBLIC_FILE_SFI
from drivers.keystore import encrypt_block

HOLDER_FILE_SFI = 0x16
MALFORMATIONS = ("length", "bcd", "date", "type")

# What a PC/SC reader reports for a Mifare Classic 1K (PC/SC part 3 storage-card ATR).
UID_ONLY_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
CPU_CARD_ATR = make_atr(b"YKT-CPU1")


def _sw(value: int) -> bytes:
    return value.to_bytes(2, "big")


def encode_bcd(digits: str) -> bytes:
    return bytes.fromhex(digits)


def encode_date(day: date) -> bytes:
    return encode_bcd(f"{day.year:04d}{day.month:02d}{day.day:02d}")


@dataclass(frozen=True, slots=True)
class CardContent:
    """What is written on the card at personalisation."""

    number: str
    issuer_id: bytes
    card_key: bytes
    valid_from: date = date(2024, 1, 1)
    valid_until: date = date(2034, 12, 31)
    class_code: int = 3
    issue_seq: int = 1
    key_id: int = 1
    application_version: int = 1
    uid: bytes = bytes.fromhex("04A1B2C3D4E5F6")
    aid: bytes = DEFAULT_AID
    holder_file: bytes = b""

    def __post_init__(self) -> None:
        if len(self.number) != 20 or not self.number.isdigit():
            raise ValueError("card number must be 20 digits")
        if len(self.issuer_id) != 8 or len(self.card_key) != 16:
            raise ValueError("issuer id must be 8 bytes and card key 16 bytes")
        if not 0 <= self.class_code <= 0xFF or not 0 <= self.issue_seq <= 0xFF:
            raise ValueError("class code and issue sequence are single bytes")
        if not 4 <= len(self.uid) <= 10:
            raise ValueError("UID must be 4 to 10 bytes")

    def public_file(self) -> bytes:
        """The 30-byte public info file as the profile lays it out."""
        return (
            self.issuer_id
            + bytes([APPLICATION_TYPE_V1, self.application_version])
            + encode_bcd(self.number)
            + encode_date(self.valid_from)
            + encode_date(self.valid_until)
            + bytes([self.class_code, self.issue_seq])
        )


@dataclass(frozen=True, slots=True)
class CardFaults:
    """Ways the emulated card misbehaves, for tests and demos.

    ``tear_after``: leave the field on receiving APDU number ``tear_after + 1`` (0 = during
    SELECT). ``slow``: seconds to wait before every answer. ``chain``: answer data-bearing
    commands with ``61 xx`` and hand the data out through GET RESPONSE. ``malformed``: corrupt
    the public info file (``length`` 29 bytes, ``bcd`` a non-decimal digit in the card number,
    ``date`` an impossible valid-from date, ``type`` application type 02). ``uid_only``: no CPU
    application at all, like a Mifare Classic card.
    """

    tear_after: int | None = None
    slow: float = 0.0
    chain: bool = False
    malformed: str | None = None
    uid_only: bool = False

    def __post_init__(self) -> None:
        if self.malformed is not None and self.malformed not in MALFORMATIONS:
            raise ValueError(f"malformed must be one of {', '.join(MALFORMATIONS)}")
        if self.tear_after is not None and self.tear_after < 0:
            raise ValueError("tear_after must be 0 or more")
        if self.slow < 0:
            raise ValueError("slow must be 0 or more seconds")


@dataclass(slots=True)
class _State:
    selected: bool = False
    pending: bytes = b""
    apdus: int = 0
    tear_armed: bool = True
    log: list[bytes] = field(default_factory=list)


class EmulatedCard:
    """The card side of the profile; implements :class:`devtools.cardemu.vpcd.VirtualCard`."""

    def __init__(self, content: CardContent, faults: CardFaults | None = None) -> None:
        self.content = content
        self.faults = faults or CardFaults()
        self._state = _State()

    def atr(self) -> bytes:
        return UID_ONLY_ATR if self.faults.uid_only else CPU_CARD_ATR

    def power_off(self) -> None:
        self._forget_state()

    def power_on(self) -> None:
        self._forget_state()

    def reset(self) -> None:
        self._forget_state()

    def _forget_state(self) -> None:
        self._state.selected = False
        self._state.pending = b""

    def new_presentation(self) -> None:
        """The holder takes the card away and taps it again: tearing does not repeat."""
        self._forget_state()
        self._state.tear_armed = False

    @property
    def apdu_log(self) -> list[bytes]:
        return self._state.log

    def public_file(self) -> bytes:
        data = self.content.public_file()
        kind = self.faults.malformed
        if kind == "length":
            return data[:-1]
        if kind == "bcd":
            return data[:12] + b"\x4a" + data[13:]
        if kind == "date":
            return data[:20] + encode_bcd("20230231") + data[24:]
        if kind == "type":
            return data[:8] + b"\x02" + data[9:]
        return data

    def process(self, apdu: bytes) -> bytes | None:
        state = self._state
        state.apdus += 1
        state.log.append(apdu)
        tear_after = self.faults.tear_after
        if state.tear_armed and tear_after is not None and state.apdus > tear_after:
            return None
        if self.faults.slow:
            time.sleep(self.faults.slow)
        if len(apdu) < 4:
            return _sw(0x6700)
        answer, sw = self._dispatch(apdu)
        if answer and self.faults.chain and apdu[1] != 0xC0:
            state.pending = answer
            return _sw(0x6100 | min(len(answer), 0xFF))
        return answer + _sw(sw)

    def _dispatch(self, apdu: bytes) -> tuple[bytes, int]:
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[4:]
        if cla == 0xFF and ins == 0xCA:
            return self._get_uid(p1, p2, body)
        if cla != 0x00:
            return b"", 0x6E00
        if ins == 0xC0:
            return self._get_response(body)
        self._state.pending = b""
        if ins == 0xA4:
            return self._select(p1, p2, body)
        if self.faults.uid_only:
            return b"", 0x6D00
        if ins == 0xB0:
            return self._read_binary(p1, p2, body)
        if ins == 0x88:
            return self._internal_authenticate(p1, p2, body)
        return b"", 0x6D00

    def _get_uid(self, p1: int, p2: int, body: bytes) -> tuple[bytes, int]:
        if (p1, p2) != (0x00, 0x00) or len(body) != 1:
            return b"", 0x6A86
        uid = self.content.uid
        if body[0] not in (0, len(uid)):
            return b"", 0x6C00 | len(uid)
        return uid, 0x9000

    def _get_response(self, body: bytes) -> tuple[bytes, int]:
        pending = self._state.pending
        if not pending or len(body) != 1:
            return b"", 0x6985
        wanted = body[0] or 256
        if wanted > len(pending):
            return b"", 0x6C00 | len(pending)
        answer, self._state.pending = pending[:wanted], pending[wanted:]
        if self._state.pending:
            return answer, 0x6100 | min(len(self._state.pending), 0xFF)
        return answer, 0x9000

    def _select(self, p1: int, p2: int, body: bytes) -> tuple[bytes, int]:
        if (p1, p2) != (0x04, 0x00) or not body or len(body) < 1 + body[0]:
            return b"", 0x6A86
        name = body[1 : 1 + body[0]]
        if self.faults.uid_only or name != self.content.aid:
            self._state.selected = False
            return b"", 0x6A82
        self._state.selected = True
        fci_body = bytes([0x84, len(name)]) + name
        return bytes([0x6F, len(fci_body)]) + fci_body, 0x9000

    def _read_binary(self, p1: int, p2: int, body: bytes) -> tuple[bytes, int]:
        if not self._state.selected:
            return b"", 0x6985
        if not p1 & 0x80 or len(body) != 1:
            return b"", 0x6A86
        sfi = p1 & 0x1F
        if sfi == PUBLIC_FILE_SFI:
            content = self.public_file()
        elif sfi == HOLDER_FILE_SFI:
            content = self.content.holder_file
        else:
            return b"", 0x6A82
        available = content[p2:]
        wanted = body[0]
        if wanted == 0:
            return available[:256], 0x9000
        if wanted != len(available):
            # ISO 7816-4 lets a card answer a wrong Le with the right one; the profile expects it.
            return b"", 0x6C00 | (len(available) & 0xFF)
        return available, 0x9000

    def _internal_authenticate(self, p1: int, p2: int, body: bytes) -> tuple[bytes, int]:
        if not self._state.selected:
            return b"", 0x6985
        if p1 != 0x00:
            return b"", 0x6A86
        if p2 != self.content.key_id:
            return b"", 0x6A88
        if len(body) < 1 or body[0] != 16 or len(body) not in (17, 18):
            return b"", 0x6700
        return encrypt_block(self.content.card_key, body[1:17]), 0x9000
