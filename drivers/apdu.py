"""ISO 7816-4 exchanges over any transport: status words, chaining (``61xx``) and Le
corrections (``6Cxx``) in bounded loops. Shared by the card application and the PSAM key store.
"""

from dataclasses import dataclass
from typing import Protocol

from models.errors import CardError

# A card may chain (61xx) or correct Le (6Cxx) a few times; more than this is a broken or hostile
# card, and the bound keeps a tap from turning into an endless exchange.
MAX_ROUNDS = 8
MAX_RESPONSE_BYTES = 1024

SW_OK = 0x9000
SW_BLOCKED = 0x6283
SW_NOT_FOUND = 0x6A82
SW_KEY_NOT_FOUND = 0x6A88
# The card refused to prove itself: what a copy without the key does.
SW_REFUSED_AUTH = frozenset({0x6982, 0x6985})

STATUS_WORDS: dict[int, str] = {
    0x6283: "application blocked (selected file invalidated)",
    0x6700: "wrong length",
    0x6982: "security status not satisfied",
    0x6985: "conditions of use not satisfied",
    0x6A80: "incorrect data",
    0x6A82: "file or application not found",
    0x6A86: "incorrect P1-P2",
    0x6A88: "referenced key not found",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
}


def describe_sw(sw: int) -> str:
    """``SW 6A82 (file or application not found)``: the status word is always in the text."""
    text = STATUS_WORDS.get(sw)
    return f"SW {sw:04X} ({text})" if text else f"SW {sw:04X}"


class Transport(Protocol):
    """One card (or SAM) in one reader slot."""

    def transmit(self, apdu: bytes) -> bytes:
        """Send a command APDU and return the response data followed by SW1 SW2.

        Raises :class:`CardTornError` when the card left or did not answer in time,
        :class:`~models.errors.CardError` for other failures of the link to this card and
        :class:`~models.errors.DriverError` when the reader or PC/SC service is gone.
        """
        ...


class CardTornError(CardError):
    """Raised when the card leaves the field or stops answering mid-exchange (tearing)."""


class CardProtocolError(CardError):
    """Raised when an answer breaks ISO 7816-4 framing (no status word, endless chaining)."""


@dataclass(frozen=True, slots=True)
class Response:
    """A complete answer, after any GET RESPONSE and Le corrections."""

    data: bytes
    sw: int


def _has_le(apdu: bytes) -> bool:
    """Whether a short APDU ends in an Le byte (ISO 7816-4 cases 2 and 4)."""
    if len(apdu) == 5:
        return True
    return len(apdu) > 5 and len(apdu) == 6 + apdu[4]


def exchange(transport: Transport, apdu: bytes) -> Response:
    """Send ``apdu`` and follow ``61xx``/``6Cxx`` until the card gives a final status word."""
    command = apdu
    data = bytearray()
    for _ in range(MAX_ROUNDS):
        raw = transport.transmit(command)
        if len(raw) < 2:
            raise CardProtocolError(f"answer of {len(raw)} byte(s) has no status word")
        sw1, sw2 = raw[-2], raw[-1]
        if sw1 == 0x6C:
            # Wrong Le: the card discards the command and says how many bytes it has.
            if not _has_le(command):
                raise CardProtocolError(f"card asked for Le {sw2:02X} on a command without Le")
            command = command[:-1] + bytes([sw2])
            continue
        data += raw[:-2]
        if len(data) > MAX_RESPONSE_BYTES:
            raise CardProtocolError(f"answer longer than {MAX_RESPONSE_BYTES} bytes")
        if sw1 == 0x61:
            command = bytes([0x00, 0xC0, 0x00, 0x00, sw2])  # GET RESPONSE
            continue
        return Response(bytes(data), (sw1 << 8) | sw2)
    raise CardProtocolError(f"card still chaining after {MAX_ROUNDS} commands")
