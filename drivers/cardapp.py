"""The card application profile (docs/card-profile.md), spoken over any APDU transport.

The terminal side of one tap in ``cpu`` mode is three commands:

=======================  ==============================  ==================================
step                     command APDU                    expected answer
=======================  ==============================  ==================================
SELECT by AID            ``00 A4 04 00 Lc <AID> 00``     FCI ``90 00``; ``6A 82`` = not ours
READ BINARY, SFI 0x15    ``00 B0 95 00 1E``              30 bytes ``90 00``
INTERNAL AUTHENTICATE    ``00 88 00 <kid> 10 <rnd> 00``  16 bytes ``90 00``
=======================  ==============================  ==================================

and in ``uid`` mode the PC/SC pseudo-APDU GET DATA ``FF CA 00 00 00``. ``61 xx`` is followed
by GET RESPONSE ``00 C0 00 00 xx`` and ``6C xx`` by the same command again with Le = xx, both in
bounded loops.

:meth:`CardApplication.read` never raises for anything the card does: it returns a
:class:`~models.cards.PresentedCard`, a :class:`~models.cards.CardFault`, or :class:`Incomplete`
when the card left (or stopped answering) before the exchange finished. Only a failing key store
(:class:`drivers.keystore.KeyStoreError`) or a reader that is itself gone
(:class:`~models.errors.DriverError`) escapes, because neither says anything about the card.
"""

import hmac
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from drivers.apdu import (
    SW_BLOCKED,
    SW_KEY_NOT_FOUND,
    SW_NOT_FOUND,
    SW_OK,
    SW_REFUSED_AUTH,
    CardProtocolError,
    Response,
    Transport,
    describe_sw,
    exchange,
)
from drivers.keystore import KeyStore
from models.cards import CardFault, Genuineness, PresentedCard, mask_card_number
from models.errors import CardError, ConfigError
from models.reasons import Reason

logger = logging.getLogger(__name__)

DEFAULT_AID = bytes.fromhex("F0594B5401")
PUBLIC_FILE_SFI = 0x15
PUBLIC_FILE_LENGTH = 30
APPLICATION_TYPE_V1 = 0x01
CHALLENGE_LENGTH = 16
UID_LENGTHS = range(4, 11)  # ISO 14443-3 single/double/triple size UIDs, FeliCa IDm, PUPI


@dataclass(frozen=True, slots=True)
class Incomplete:
    """The card left the field mid-exchange: no decision, nothing recorded, ask to tap again."""

    detail: str


CardRead = PresentedCard | CardFault | Incomplete


class CardMode(StrEnum):
    """How the terminal identifies a card."""

    CPU = "cpu"  # the card application with the genuine-card check
    UID = "uid"  # legacy: the anti-collision UID only; anyone can clone it


@dataclass(frozen=True, slots=True)
class PublicInfo:
    """The public info file (SFI 0x15) after strict parsing."""

    issuer_id: bytes
    application_version: int
    number: str
    number_bcd: bytes
    valid_from: date
    valid_until: date
    class_code: int
    issue_seq: int


class MalformedCardDataError(ValueError):
    """Raised by the parsers when card content breaks the profile; the message says where."""


def decode_bcd(data: bytes, what: str) -> str:
    """Packed BCD to digits; any nibble above 9 is malformed."""
    digits = data.hex()
    if not digits.isdigit():
        raise MalformedCardDataError(f"{what} is not BCD")
    return digits


def _decode_date(data: bytes, what: str) -> date:
    digits = decode_bcd(data, what)
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise MalformedCardDataError(f"{what} {digits} is not a date") from None


def parse_public_file(data: bytes) -> PublicInfo:
    """Parse the 30-byte public info file; raise :class:`MalformedCardDataError` on any flaw."""
    if len(data) != PUBLIC_FILE_LENGTH:
        raise MalformedCardDataError(
            f"public info file has {len(data)} bytes, expected {PUBLIC_FILE_LENGTH}"
        )
    if data[8] != APPLICATION_TYPE_V1:
        raise MalformedCardDataError(f"application type {data[8]:02X}, expected 01")
    number_bcd = data[10:20]
    number = decode_bcd(number_bcd, "card number")
    valid_from = _decode_date(data[20:24], "valid-from date")
    valid_until = _decode_date(data[24:28], "valid-until date")
    if valid_until < valid_from:
        raise MalformedCardDataError("valid-until date precedes valid-from date")
    return PublicInfo(
        issuer_id=data[0:8],
        application_version=data[9],
        number=number,
        number_bcd=number_bcd,
        valid_from=valid_from,
        valid_until=valid_until,
        class_code=data[28],
        issue_seq=data[29],
    )


class CardApplication:
    """Reads one presented card per :meth:`read` call, in ``cpu`` or ``uid`` mode."""

    def __init__(
        self,
        keystore: "KeyStore | None" = None,
        *,
        mode: CardMode = CardMode.CPU,
        aid: bytes = DEFAULT_AID,
        key_id: int = 1,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not 5 <= len(aid) <= 16:
            raise ConfigError(f"card aid: {len(aid)} bytes, an AID has 5 to 16")
        if not 0 <= key_id <= 0xFF:
            raise ConfigError(f"card key_id: {key_id} is outside 0..255")
        if mode is CardMode.CPU and keystore is None:
            raise ConfigError("card mode cpu needs a key store (a key file or a PSAM reader)")
        self._keystore = keystore
        self._mode = mode
        self._aid = aid
        self._key_id = key_id
        # Injectable only so byte-exact tests can predict the challenge; production uses urandom.
        self._random_bytes = random_bytes

    @property
    def mode(self) -> CardMode:
        return self._mode

    def read(self, transport: Transport) -> CardRead:
        """Run the profile's exchange with the card in ``transport``."""
        if self._mode is CardMode.UID:
            return self._read_uid(transport)
        return self._read_cpu(transport)

    def _read_uid(self, transport: Transport) -> CardRead:
        try:
            answer = exchange(transport, bytes.fromhex("FFCA000000"))  # GET DATA (UID)
        except CardProtocolError as exc:
            return CardFault(Reason.CARD_MALFORMED, str(exc))
        except CardError as exc:
            return Incomplete(str(exc))
        if answer.sw != SW_OK:
            return CardFault(Reason.CARD_MALFORMED, f"GET DATA (UID): {describe_sw(answer.sw)}")
        if len(answer.data) not in UID_LENGTHS:
            return CardFault(Reason.CARD_MALFORMED, f"UID of {len(answer.data)} bytes")
        return PresentedCard(number=answer.data.hex().upper(), genuine=Genuineness.UID_ONLY)

    def _read_cpu(self, transport: Transport) -> CardRead:
        info: PublicInfo | None = None
        challenge = self._random_bytes(CHALLENGE_LENGTH)
        try:
            select = exchange(transport, self._select_apdu())
            if select.sw != SW_OK:
                return self._select_fault(select.sw)
            public = exchange(transport, bytes([0x00, 0xB0, 0x80 | PUBLIC_FILE_SFI, 0x00, 0x1E]))
            if public.sw != SW_OK:
                reason = Reason.CARD_UNKNOWN if public.sw == SW_BLOCKED else Reason.CARD_MALFORMED
                return CardFault(reason, f"READ BINARY 0x15: {describe_sw(public.sw)}")
            try:
                info = parse_public_file(public.data)
            except MalformedCardDataError as exc:
                return CardFault(Reason.CARD_MALFORMED, str(exc))
            auth = exchange(transport, self._authenticate_apdu(challenge))
        except CardProtocolError as exc:
            return CardFault(Reason.CARD_MALFORMED, str(exc), info.number if info else None)
        except CardError as exc:
            return Incomplete(str(exc))
        # The card's part is over; it may leave now while the key store works.
        return self._judge(info, challenge, auth)

    def _select_apdu(self) -> bytes:
        return bytes([0x00, 0xA4, 0x04, 0x00, len(self._aid)]) + self._aid + b"\x00"

    def _authenticate_apdu(self, challenge: bytes) -> bytes:
        return bytes([0x00, 0x88, 0x00, self._key_id, CHALLENGE_LENGTH]) + challenge + b"\x00"

    @staticmethod
    def _select_fault(sw: int) -> CardFault:
        if sw in (SW_NOT_FOUND, SW_BLOCKED):
            return CardFault(Reason.CARD_UNKNOWN, f"SELECT: {describe_sw(sw)}")
        return CardFault(Reason.CARD_MALFORMED, f"SELECT: {describe_sw(sw)}")

    def _judge(self, info: PublicInfo, challenge: bytes, auth: Response) -> CardRead:
        masked = mask_card_number(info.number)
        if auth.sw == SW_BLOCKED:
            return CardFault(Reason.CARD_UNKNOWN, f"INTERNAL AUTHENTICATE: {describe_sw(auth.sw)}")
        if auth.sw == SW_KEY_NOT_FOUND:
            # The card has no key of this id (a card issued before or after a master-key
            # rotation): a card office matter, not a clone.
            logger.warning("card %s has no key id %d", masked, self._key_id)
            detail = f"INTERNAL AUTHENTICATE key id {self._key_id}: {describe_sw(auth.sw)}"
            return CardFault(Reason.CARD_KEY_UNKNOWN, detail, info.number)
        if auth.sw in SW_REFUSED_AUTH:
            logger.warning(
                "card %s refused INTERNAL AUTHENTICATE: %s", masked, describe_sw(auth.sw)
            )
            return self._presented(info, Genuineness.NOT_GENUINE)
        if auth.sw != SW_OK:
            detail = f"INTERNAL AUTHENTICATE: {describe_sw(auth.sw)}"
            return CardFault(Reason.CARD_MALFORMED, detail, info.number)
        if len(auth.data) != CHALLENGE_LENGTH:
            detail = f"INTERNAL AUTHENTICATE answered {len(auth.data)} bytes, expected 16"
            return CardFault(Reason.CARD_MALFORMED, detail, info.number)
        assert self._keystore is not None  # guaranteed by __init__ for cpu mode
        expected = self._keystore.expected_response(
            self._key_id, info.number_bcd, info.issuer_id, challenge
        )
        if hmac.compare_digest(expected, auth.data):
            return self._presented(info, Genuineness.GENUINE)
        logger.warning("card %s failed the genuine-card check (wrong response)", masked)
        return self._presented(info, Genuineness.NOT_GENUINE)

    @staticmethod
    def _presented(info: PublicInfo, genuine: Genuineness) -> PresentedCard:
        return PresentedCard(
            number=info.number,
            genuine=genuine,
            issue_seq=info.issue_seq,
            class_code=info.class_code,
            valid_from=info.valid_from,
            valid_until=info.valid_until,
            issuer_id=info.issuer_id.hex().upper(),
        )
