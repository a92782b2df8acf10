"""Electronic-card tokens: what holds for every code, not just the examples.

Keys come from drawn seeds and signing is deterministic, so a run depends on the hypothesis seed
alone (``--hypothesis-seed=N`` replays it), never on the clock or the system's randomness.
"""

from hypothesis import assume, given
from hypothesis import strategies as st

from models.qr import MAX_LIFETIME_S, QrCredential, QrFault, check_token
from models.reasons import Reason
from tests.qr_tokens import PhoneKey, lookup, never_seen

NOW = 1_800_000_000
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \n"

ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)


@st.composite
def phones(draw: st.DrawFn) -> PhoneKey:
    return PhoneKey(draw(ids), draw(ids), draw(st.binary(min_size=32, max_size=32)))


@st.composite
def valid_tokens(draw: st.DrawFn) -> tuple[PhoneKey, str, int]:
    phone = draw(phones())
    iat = draw(st.integers(NOW - 30, NOW + 5))
    exp = iat + draw(st.integers(0, MAX_LIFETIME_S))
    assume(exp + 5 >= NOW)
    nonce = draw(st.binary(min_size=12, max_size=12))
    return phone, phone.token(iat, exp, nonce=nonce), NOW


def _check(
    phone: PhoneKey, text: str, now: int, seen: set[tuple[str, str]] | None = None
) -> object:
    known = seen if seen is not None else set()
    return check_token(text, lookup(phone.keys()), now, lambda h, n: (h, n) in known)


@given(valid_tokens())
def test_valid_tokens_pass(case: tuple[PhoneKey, str, int]) -> None:
    phone, token, now = case
    result = _check(phone, token, now)
    assert isinstance(result, QrCredential)
    assert (result.holder_id, result.key_id) == (phone.holder_id, phone.key_id)


@st.composite
def mutations(draw: st.DrawFn, token: str) -> str:
    """The token with a few characters replaced, inserted or deleted."""
    text = list(token)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(("replace", "insert", "delete")))
        char = draw(st.sampled_from(ALPHABET) | st.characters(codec="utf-8"))
        if how == "insert" or where == len(text):
            text.insert(where, char)
        elif how == "replace":
            text[where] = char
        else:
            del text[where]
    return "".join(text)


@given(st.data(), valid_tokens())
def test_any_mutation_of_a_valid_token_is_refused(
    data: st.DataObject, case: tuple[PhoneKey, str, int]
) -> None:
    phone, token, now = case
    mutated = data.draw(mutations(token))
    assume(mutated != token)
    result = _check(phone, mutated, now)
    assert isinstance(result, QrFault), mutated
    assert result.reason in (Reason.QR_INVALID, Reason.QR_UNKNOWN_KEY)


@given(valid_tokens(), st.integers(1, 5))
def test_a_valid_token_passes_exactly_once(case: tuple[PhoneKey, str, int], shows: int) -> None:
    phone, token, now = case
    seen: set[tuple[str, str]] = set()
    accepted = 0
    for _ in range(shows + 1):
        result = _check(phone, token, now, seen)
        if isinstance(result, QrCredential):
            accepted += 1
            seen.add((result.holder_id, result.nonce))  # what the store keeps once it is recorded
        else:
            assert isinstance(result, QrFault)
            assert (result.reason, result.holder_id) == (Reason.QR_REPLAYED, phone.holder_id)
    assert accepted == 1


@given(
    phones(),
    st.integers(NOW - 10_000, NOW + 10_000),
    st.integers(0, MAX_LIFETIME_S),
    st.integers(0, 30),
    st.integers(-200, 200),
)
def test_expiry_and_skew_boundaries_are_exact(
    phone: PhoneKey, iat: int, lifetime: int, skew: int, offset: int
) -> None:
    exp = iat + lifetime
    # Look near the edges most of the time: just before iat - skew and just after exp + skew.
    now = (iat - skew if offset < 0 else exp + skew) + offset // 20
    token = phone.token(iat, exp)
    result = check_token(token, lookup(phone.keys()), now, never_seen, skew=skew)
    if iat > now + skew:
        assert isinstance(result, QrFault) and result.reason is Reason.QR_INVALID
    elif now > exp + skew:
        assert isinstance(result, QrFault) and result.reason is Reason.QR_EXPIRED
    else:
        assert isinstance(result, QrCredential)
        assert result.keep_until == exp + skew


@given(st.text(max_size=400) | st.text(ALPHABET, max_size=400).map(lambda t: "YKT1." + t))
def test_any_text_is_an_answer_never_an_exception(text: str) -> None:
    phone = PhoneKey("H1", "q-1")
    assert isinstance(_check(phone, text, NOW), QrFault)
