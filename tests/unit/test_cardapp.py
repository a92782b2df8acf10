"""Byte-exact tests of the card application: every APDU the terminal sends, against scripted
card answers. Each scripted step names the command it stands for."""

from datetime import date
from typing import Any

import pytest

from devtools.cardemu.card import CardContent, CardFaults, EmulatedCard
from drivers.apdu import MAX_ROUNDS, CardTornError
from drivers.cardapp import (
    CardApplication,
    CardMode,
    Incomplete,
    MalformedCardDataError,
    parse_public_file,
)
from drivers.keystore import KeyStoreError, SoftwareKeyStore, diversify, encrypt_block
from models.cards import CardFault, Genuineness, PresentedCard
from models.errors import CardError, ConfigError
from models.reasons import Reason

MASTER = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
ISSUER = "5943484E00000001"
NUMBER = "31000000000000012345"
PUBLIC_FILE = ISSUER + "01" + "01" + NUMBER + "20240101" + "20341231" + "03" + "02"
CHALLENGE = bytes(range(0xA0, 0xB0))

SELECT = "00A4040005F0594B540100"
FCI = "6F0784 05F0594B5401 9000"
READ_PUBLIC = "00B095001E"
AUTHENTICATE = "0088000110" + CHALLENGE.hex() + "00"


def card_answer(challenge: bytes = CHALLENGE) -> str:
    card_key = diversify(MASTER, bytes.fromhex(NUMBER), bytes.fromhex(ISSUER))
    return encrypt_block(card_key, challenge).hex() + "9000"


class ScriptedCard:
    """A transport that plays the card: each step is (expected APDU, answer or exception)."""

    def __init__(self, *steps: tuple[str, str | Exception]) -> None:
        self.steps = [(apdu.replace(" ", "").upper(), answer) for apdu, answer in steps]
        self.sent: list[str] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu.hex().upper())
        assert self.steps, f"unexpected APDU {apdu.hex().upper()}"
        expected, answer = self.steps.pop(0)
        assert apdu.hex().upper() == expected
        if isinstance(answer, Exception):
            raise answer
        return bytes.fromhex(answer.replace(" ", ""))

    def done(self) -> bool:
        return not self.steps


def app(mode: CardMode = CardMode.CPU, **kwargs: Any) -> CardApplication:
    keystore = SoftwareKeyStore({1: MASTER})
    return CardApplication(keystore, mode=mode, random_bytes=lambda n: CHALLENGE[:n], **kwargs)


def test_genuine_card() -> None:
    card = ScriptedCard(
        (SELECT, FCI),  # SELECT by AID
        (READ_PUBLIC, PUBLIC_FILE + "9000"),  # READ BINARY SFI 0x15
        (AUTHENTICATE, card_answer()),  # INTERNAL AUTHENTICATE, key id 1
    )

    result = app().read(card)

    assert result == PresentedCard(
        number=NUMBER,
        genuine=Genuineness.GENUINE,
        issue_seq=2,
        class_code=3,
        valid_from=date(2024, 1, 1),
        valid_until=date(2034, 12, 31),
        issuer_id=ISSUER,
    )
    assert card.done()


def test_configured_aid_and_key_id_are_sent() -> None:
    card = ScriptedCard(
        ("00A4040007A000000003869800", FCI),  # SELECT by the configured AID
        (READ_PUBLIC, PUBLIC_FILE + "9000"),  # READ BINARY SFI 0x15
        ("0088000710" + CHALLENGE.hex() + "00", "6982"),  # INTERNAL AUTHENTICATE, key id 7
    )

    result = app(aid=bytes.fromhex("A0000000038698"), key_id=7).read(card)

    assert isinstance(result, PresentedCard)
    assert result.genuine is Genuineness.NOT_GENUINE
    assert card.done()


def test_a_card_without_the_key_id_is_a_card_error_not_a_clone() -> None:
    card = ScriptedCard(
        (SELECT, FCI),  # SELECT by AID
        (READ_PUBLIC, PUBLIC_FILE + "9000"),  # READ BINARY SFI 0x15
        ("0088000710" + CHALLENGE.hex() + "00", "6A88"),  # INTERNAL AUTHENTICATE: no key 7
    )

    result = app(key_id=7).read(card)

    assert result == CardFault(
        Reason.CARD_KEY_UNKNOWN,
        "INTERNAL AUTHENTICATE key id 7: SW 6A88 (referenced key not found)",
        NUMBER,
    )
    assert card.done()


@pytest.mark.parametrize("sw", ["6982", "6985"])
def test_refused_authentication_is_not_genuine(sw: str) -> None:
    card = ScriptedCard(
        (SELECT, FCI),  # SELECT by AID
        (READ_PUBLIC, PUBLIC_FILE + "9000"),  # READ BINARY SFI 0x15
        (AUTHENTICATE, sw),  # INTERNAL AUTHENTICATE refused
    )

    result = app().read(card)

    assert isinstance(result, PresentedCard)
    assert result.genuine is Genuineness.NOT_GENUINE


def test_not_our_application_is_unknown() -> None:
    card = ScriptedCard((SELECT, "6A82"))  # SELECT by AID: no such application

    result = app().read(card)

    assert result == CardFault(
        Reason.CARD_UNKNOWN, "SELECT: SW 6A82 (file or application not found)"
    )
    assert card.done()


def test_blocked_application_is_unknown() -> None:
    card = ScriptedCard((SELECT, "6283"))  # SELECT by AID: application blocked

    result = app().read(card)

    assert isinstance(result, CardFault)
    assert result.reason is Reason.CARD_UNKNOWN
    assert "6283" in result.detail


@pytest.mark.parametrize("sw", ["6700", "6D00", "6A86", "6982", "6985", "6E00", "6F00", "9100"])
def test_other_select_status_words_are_malformed_with_the_sw(sw: str) -> None:
    card = ScriptedCard((SELECT, sw))  # SELECT by AID

    result = app().read(card)

    assert isinstance(result, CardFault)
    assert result.reason is Reason.CARD_MALFORMED
    assert f"SW {sw}" in result.detail


@pytest.mark.parametrize(
    ("sw", "reason"),
    [
        ("6A82", Reason.CARD_MALFORMED),
        ("6982", Reason.CARD_MALFORMED),
        ("6A86", Reason.CARD_MALFORMED),
        ("6283", Reason.CARD_UNKNOWN),
        ("6400", Reason.CARD_MALFORMED),
    ],
)
def test_read_binary_status_words(sw: str, reason: Reason) -> None:
    card = ScriptedCard(
        (SELECT, FCI),  # SELECT by AID
        (READ_PUBLIC, sw),  # READ BINARY SFI 0x15 refused
    )

    result = app().read(card)

    assert isinstance(result, CardFault)
    assert result.reason is reason
    assert f"SW {sw}" in result.detail


@pytest.mark.parametrize("sw", ["6700", "6D00", "6A86", "6F00"])
def test_authenticate_errors_are_malformed_and_keep_the_number(sw: str) -> None:
    card = ScriptedCard(
        (SELECT, FCI),  # SELECT by AID
        (READ_PUBLIC, PUBLIC_FILE + "9000"),  # READ BINARY SFI 0x15
        (AUTHENTICATE, sw),  # INTERNAL AUTHENTICATE fails
    )

    result = app().read(card)

    assert isinstance(result, CardFault)
    assert result.reason is Reason.CARD_MALFORMED
    assert result.number == NUMBER
    assert f"SW {sw}" in result.detail


def test_short_authenticate_answer_is_malformed() -> None:
    card = ScriptedCard(
        (SELECT, FCI),  # SELECT by AID
        (READ_PUBLIC, PUBLIC_FILE + "9000"),  # READ BINARY SFI 0x15
        (AUTHENTICATE, "00" * 8 + "9000"),  # INTERNAL AUTHENTICATE: 8 bytes only
    )

    result = app().read(card)

    assert isinstance(result, CardFault)
    assert "8 bytes" in result.detail


def test_61xx_is_followed_by_get_response() -> None:
    card = ScriptedCard(
        (SELECT, "6109"),  # SELECT by AID: 9 bytes waiting
        ("00C0000009", FCI),  # GET RESPONSE
        (READ_PUBLIC, "6114"),  # READ BINARY SFI 0x15: 20 bytes waiting
        ("00C0000014", PUBLIC_FILE[:40] + "610A"),  # GET RESPONSE: 20 bytes, 10 more waiting
        ("00C000000A", PUBLIC_FILE[40:] + "9000"),  # GET RESPONSE: the last 10
        (AUTHENTICATE, "6110"),  # INTERNAL AUTHENTICATE: 16 bytes waiting
        ("00C0000010", card_answer()),  # GET RESPONSE
    )

    result = app().read(card)

    assert isinstance(result, PresentedCard)
    assert result.genuine is Genuineness.GENUINE
    assert card.done()


def test_6cxx_resends_with_the_right_le() -> None:
    card = ScriptedCard(
        (SELECT, "6C09"),  # SELECT by AID: Le should be 09
        ("00A4040005F0594B540109", FCI),  # SELECT by AID again, Le 09
        (READ_PUBLIC, "6C1D"),  # READ BINARY SFI 0x15: the file has 29 bytes
        ("00B095001D", PUBLIC_FILE[:58] + "9000"),  # READ BINARY SFI 0x15, Le 1D
    )

    result = app().read(card)

    assert isinstance(result, CardFault)
    assert result.reason is Reason.CARD_MALFORMED
    assert "29 bytes" in result.detail
    assert card.done()


def test_endless_get_response_is_bounded() -> None:
    steps: list[tuple[str, str | Exception]] = [(SELECT, "6101")]  # SELECT by AID
    steps += [("00C0000001", "AA6101")] * (MAX_ROUNDS - 1)  # GET RESPONSE, forever
    card = ScriptedCard(*steps)

    result = app().read(card)

    assert isinstance(result, CardFault)
    assert result.reason is Reason.CARD_MALFORMED
    assert "chaining" in result.detail
    assert len(card.sent) == MAX_ROUNDS


def test_endless_le_correction_is_bounded() -> None:
    steps: list[tuple[str, str | Exception]] = [(SELECT, "6C05")]  # SELECT by AID
    steps += [("00A4040005F0594B540105", "6C05")] * (MAX_ROUNDS - 1)  # SELECT again, forever
    card = ScriptedCard(*steps)

    result = app().read(card)

    assert isinstance(result, CardFault)
    assert len(card.sent) == MAX_ROUNDS


@pytest.mark.parametrize("answer", ["", "90"])
def test_answer_without_status_word_is_malformed(answer: str) -> None:
    card = ScriptedCard((SELECT, answer))  # SELECT by AID: truncated answer

    result = app().read(card)

    assert isinstance(result, CardFault)
    assert result.reason is Reason.CARD_MALFORMED
    assert "status word" in result.detail


@pytest.mark.parametrize("step", [0, 1, 2])
def test_card_leaving_at_any_step_is_incomplete(step: int) -> None:
    steps: list[tuple[str, str | Exception]] = [
        (SELECT, FCI),  # SELECT by AID
        (READ_PUBLIC, PUBLIC_FILE + "9000"),  # READ BINARY SFI 0x15
        (AUTHENTICATE, card_answer()),  # INTERNAL AUTHENTICATE
    ]
    steps[step] = (steps[step][0], CardTornError("card left the field"))
    card = ScriptedCard(*steps[: step + 1])

    result = app().read(card)

    assert result == Incomplete("card left the field")
    assert card.done()


def test_other_card_link_errors_are_incomplete() -> None:
    card = ScriptedCard((SELECT, CardError("reader busy")))  # SELECT by AID

    assert isinstance(app().read(card), Incomplete)


@pytest.mark.parametrize(
    ("public_file", "detail"),
    [
        (PUBLIC_FILE[:58], "29 bytes"),
        (PUBLIC_FILE + "00", "31 bytes"),
        (PUBLIC_FILE[:16] + "02" + PUBLIC_FILE[18:], "application type 02"),
        (PUBLIC_FILE[:20] + "3100000000000001234A" + PUBLIC_FILE[40:], "card number is not BCD"),
        (PUBLIC_FILE[:40] + "20230231" + PUBLIC_FILE[48:], "20230231 is not a date"),
        (PUBLIC_FILE[:40] + "00000101" + PUBLIC_FILE[48:], "00000101 is not a date"),
        (PUBLIC_FILE[:48] + "2024133F" + PUBLIC_FILE[56:], "valid-until date is not BCD"),
        (PUBLIC_FILE[:48] + "20231231" + PUBLIC_FILE[56:], "precedes"),
    ],
)
def test_malformed_public_file(public_file: str, detail: str) -> None:
    card = ScriptedCard(
        (SELECT, FCI),  # SELECT by AID
        (READ_PUBLIC, public_file + "9000"),  # READ BINARY SFI 0x15: broken content
    )

    result = app().read(card)

    assert isinstance(result, CardFault)
    assert result.reason is Reason.CARD_MALFORMED
    assert detail in result.detail
    assert card.done()


def test_parse_public_file_fields() -> None:
    info = parse_public_file(bytes.fromhex(PUBLIC_FILE))

    assert info.issuer_id == bytes.fromhex(ISSUER)
    assert info.number == NUMBER
    assert info.number_bcd == bytes.fromhex(NUMBER)
    assert (info.class_code, info.issue_seq, info.application_version) == (3, 2, 1)
    with pytest.raises(MalformedCardDataError):
        parse_public_file(b"")


def test_uid_mode() -> None:
    card = ScriptedCard(("FFCA000000", "04A1B2C3D4E5F6 9000"))  # GET DATA (UID)

    result = app(CardMode.UID).read(card)

    assert result == PresentedCard(number="04A1B2C3D4E5F6", genuine=Genuineness.UID_ONLY)


def test_uid_mode_needs_no_key_store() -> None:
    card = ScriptedCard(("FFCA000000", "A1B2C3D4 9000"))  # GET DATA (UID)

    result = CardApplication(mode=CardMode.UID).read(card)

    assert isinstance(result, PresentedCard)


@pytest.mark.parametrize(
    ("answer", "detail"),
    [("6A81", "SW 6A81"), ("A1B2C3 9000", "UID of 3 bytes"), ("00" * 11 + "9000", "UID of 11")],
)
def test_uid_mode_faults(answer: str, detail: str) -> None:
    card = ScriptedCard(("FFCA000000", answer))  # GET DATA (UID)

    result = app(CardMode.UID).read(card)

    assert isinstance(result, CardFault)
    assert result.reason is Reason.CARD_MALFORMED
    assert detail in result.detail


def test_uid_mode_tearing_is_incomplete() -> None:
    card = ScriptedCard(("FFCA000000", CardTornError("gone")))  # GET DATA (UID)

    assert app(CardMode.UID).read(card) == Incomplete("gone")


def test_key_store_failure_is_not_blamed_on_the_card() -> None:
    class BrokenKeyStore:
        def expected_response(self, kid: int, number: bytes, issuer: bytes, rnd: bytes) -> bytes:
            raise KeyStoreError("PSAM gone")

    card = ScriptedCard(
        (SELECT, FCI),  # SELECT by AID
        (READ_PUBLIC, PUBLIC_FILE + "9000"),  # READ BINARY SFI 0x15
        (AUTHENTICATE, card_answer()),  # INTERNAL AUTHENTICATE
    )
    reader = CardApplication(BrokenKeyStore(), random_bytes=lambda n: CHALLENGE)

    with pytest.raises(KeyStoreError):
        reader.read(card)


def test_every_read_uses_a_fresh_challenge() -> None:
    challenges: list[bytes] = []

    class Card:
        def transmit(self, apdu: bytes) -> bytes:
            if apdu[1] == 0xA4:  # SELECT by AID
                return bytes.fromhex("9000")
            if apdu[1] == 0xB0:  # READ BINARY SFI 0x15
                return bytes.fromhex(PUBLIC_FILE + "9000")
            challenges.append(apdu[5:21])  # INTERNAL AUTHENTICATE
            return bytes(16) + b"\x90\x00"

    reader = CardApplication(SoftwareKeyStore({1: MASTER}))
    reader.read(Card())
    reader.read(Card())

    assert len(challenges) == 2
    assert challenges[0] != challenges[1]


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="key store"):
        CardApplication()
    with pytest.raises(ConfigError, match="AID"):
        CardApplication(SoftwareKeyStore({1: MASTER}), aid=b"\x01\x02")
    with pytest.raises(ConfigError, match="key_id"):
        CardApplication(SoftwareKeyStore({1: MASTER}), key_id=256)


# -- the shipped card emulator speaks the same profile ---------------------------------------


class InProcessCard:
    """The emulated card as a transport, without pcscd: a tear becomes CardTornError."""

    def __init__(self, card: EmulatedCard) -> None:
        self.card = card

    def transmit(self, apdu: bytes) -> bytes:
        answer = self.card.process(apdu)
        if answer is None:
            raise CardTornError("card left the field")
        return answer


def emulated(**faults: Any) -> InProcessCard:
    content = CardContent(
        number=NUMBER,
        issuer_id=bytes.fromhex(ISSUER),
        card_key=diversify(MASTER, bytes.fromhex(NUMBER), bytes.fromhex(ISSUER)),
    )
    return InProcessCard(EmulatedCard(content, CardFaults(**faults)))


@pytest.mark.parametrize(
    ("faults", "expected"),
    [
        ({}, Genuineness.GENUINE),
        ({"chain": True}, Genuineness.GENUINE),
        ({"tear_after": 5}, Genuineness.GENUINE),
        ({"malformed": "length"}, Reason.CARD_MALFORMED),
        ({"malformed": "bcd"}, Reason.CARD_MALFORMED),
        ({"malformed": "date"}, Reason.CARD_MALFORMED),
        ({"malformed": "type"}, Reason.CARD_MALFORMED),
        ({"uid_only": True}, Reason.CARD_UNKNOWN),
    ],
)
def test_emulated_card(faults: dict[str, Any], expected: Genuineness | Reason) -> None:
    result = CardApplication(SoftwareKeyStore({1: MASTER})).read(emulated(**faults))

    if isinstance(expected, Genuineness):
        assert isinstance(result, PresentedCard)
        assert result.genuine is expected
    else:
        assert isinstance(result, CardFault)
        assert result.reason is expected


def test_emulated_card_tears_then_behaves_on_the_next_tap() -> None:
    card = emulated(tear_after=2)
    reader = CardApplication(SoftwareKeyStore({1: MASTER}))

    assert isinstance(reader.read(card), Incomplete)
    card.card.new_presentation()
    result = reader.read(card)
    assert isinstance(result, PresentedCard)
    assert result.genuine is Genuineness.GENUINE


def test_emulated_clone_and_uid() -> None:
    clone = emulated()
    clone.card = EmulatedCard(
        CardContent(number=NUMBER, issuer_id=bytes.fromhex(ISSUER), card_key=bytes(16))
    )
    result = CardApplication(SoftwareKeyStore({1: MASTER})).read(clone)
    assert isinstance(result, PresentedCard)
    assert result.genuine is Genuineness.NOT_GENUINE

    uid = CardApplication(mode=CardMode.UID).read(emulated(uid_only=True))
    assert uid == PresentedCard(number="04A1B2C3D4E5F6", genuine=Genuineness.UID_ONLY)
