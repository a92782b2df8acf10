"""Whatever a card (or PSAM) answers, the terminal ends with a clear result, never a crash."""

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from drivers.apdu import MAX_ROUNDS, CardTornError
from drivers.cardapp import (
    CardApplication,
    CardMode,
    Incomplete,
    MalformedCardDataError,
    parse_public_file,
)
from drivers.keystore import KeyStoreError, PsamKeyStore, SoftwareKeyStore
from models.cards import CardFault, Genuineness, PresentedCard
from models.errors import CardError

MASTER = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
VALID_PUBLIC_FILE = bytes.fromhex("5943484E0000000101013100000000000001234520240101203412310302")
COMMANDS = 3  # SELECT, READ BINARY, INTERNAL AUTHENTICATE

INTERESTING_SW = [
    0x9000, 0x6283, 0x6700, 0x6982, 0x6985, 0x6A82, 0x6A86, 0x6A88, 0x6D00, 0x6E00, 0x6F00,
]  # fmt: skip

status_words = st.one_of(
    st.sampled_from(INTERESTING_SW),
    st.integers(0x00, 0xFF).map(lambda n: 0x6100 | n),  # more data: GET RESPONSE
    st.integers(0x00, 0xFF).map(lambda n: 0x6C00 | n),  # wrong Le: resend
    st.integers(0x0000, 0xFFFF),
)

answers = st.one_of(
    # data + a status word
    st.tuples(st.binary(max_size=40), status_words).map(lambda a: a[0] + a[1].to_bytes(2, "big")),
    # anything at all, including nothing and a lone byte
    st.binary(max_size=8),
    # the card leaves, or the link fails otherwise
    st.sampled_from([CardTornError("card left"), CardError("link failed")]),
)


class FuzzedCard:
    """Answers every APDU with whatever hypothesis draws."""

    def __init__(self, data: st.DataObject, strategy: st.SearchStrategy[bytes | Exception]) -> None:
        self.data = data
        self.strategy = strategy
        self.sent: list[bytes] = []

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        answer = self.data.draw(self.strategy)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _reader(mode: CardMode = CardMode.CPU) -> CardApplication:
    return CardApplication(SoftwareKeyStore({1: MASTER}), mode=mode)


def _check(result: object, card: FuzzedCard) -> None:
    assert isinstance(result, PresentedCard | CardFault | Incomplete)
    assert len(card.sent) <= COMMANDS * MAX_ROUNDS
    if isinstance(result, PresentedCard):
        assert len(result.number) == 20
        assert result.number.isdigit()
        assert result.valid_from is not None
        assert result.valid_until is not None
        assert result.valid_from <= result.valid_until


@given(st.data())
def test_random_answers_in_cpu_mode(data: st.DataObject) -> None:
    card = FuzzedCard(data, answers)
    _check(_reader().read(card), card)


@given(st.data())
def test_random_answers_in_uid_mode(data: st.DataObject) -> None:
    card = FuzzedCard(data, answers)
    result = _reader(CardMode.UID).read(card)
    assert isinstance(result, PresentedCard | CardFault | Incomplete)
    if isinstance(result, PresentedCard):
        assert result.genuine is Genuineness.UID_ONLY


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    mutable = bytearray(data)
    for offset, value in edits:
        mutable[offset % len(mutable)] = value
    return bytes(mutable)


mutated_public_files = st.one_of(
    st.lists(st.tuples(st.integers(0, 29), st.integers(0, 255)), max_size=4).map(
        lambda edits: _mutate(VALID_PUBLIC_FILE, edits)
    ),
    st.binary(min_size=30, max_size=30),
    st.integers(0, 40).map(lambda n: (VALID_PUBLIC_FILE * 2)[:n]),
)


@given(mutated_public_files, st.binary(max_size=20), status_words)
def test_nearly_valid_cards(public_file: bytes, auth: bytes, auth_sw: int) -> None:
    script = [
        b"\x90\x00",  # SELECT by AID
        public_file + b"\x90\x00",  # READ BINARY SFI 0x15
        auth + auth_sw.to_bytes(2, "big"),  # INTERNAL AUTHENTICATE
    ]

    class Card:
        def transmit(self, apdu: bytes) -> bytes:
            if apdu[1] == 0xC0:  # GET RESPONSE: nothing more
                return b"\x6a\x86"
            if script:
                return script.pop(0)
            return b"\x6f\x00"

    result = _reader().read(Card())

    assert isinstance(result, PresentedCard | CardFault)


@given(st.binary(min_size=30, max_size=30))
def test_public_file_parses_or_says_why(data: bytes) -> None:
    try:
        info = parse_public_file(data)
    except MalformedCardDataError as exc:
        assert str(exc)
    else:
        assert info.number.isdigit()
        assert date(1, 1, 1) <= info.valid_from <= info.valid_until


@given(st.data())
def test_random_psam_answers(data: st.DataObject) -> None:
    sam = FuzzedCard(data, answers)
    store = PsamKeyStore(sam)
    number, issuer, challenge = bytes(10), bytes(8), bytes(16)
    try:
        response = store.expected_response(1, number, issuer, challenge)
    except KeyStoreError as exc:
        assert str(exc)
    else:
        assert len(response) == 16
