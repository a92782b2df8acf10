"""Electronic-card tokens (models.qr): every malformed shape is a refusal with its reason."""

import base64
import json

import pytest

from models.qr import QrCredential, QrFault, check_token, parse_token
from models.reasons import Reason
from tests.qr_tokens import PhoneKey, b64url, lookup, never_seen

NOW = 1_800_000_000
PHONE = PhoneKey("H1", "q-1")
OTHER = PhoneKey("H1", "q-1", seed=bytes(range(1, 33)))


def check(text: str, *, now: int = NOW, keys: PhoneKey = PHONE, skew: int = 5) -> object:
    return check_token(text, lookup(keys.keys()), now, never_seen, skew=skew)


def refused(text: str, **kwargs: object) -> QrFault:
    result = check(text, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, QrFault), result
    return result


def test_a_fresh_code_is_its_holders_credential() -> None:
    result = check(PHONE.token(NOW - 3, NOW + 27, nonce=b"\x07" * 12))
    assert result == QrCredential("H1", "q-1", b64url(b"\x07" * 12), NOW - 3, NOW + 27, NOW + 32)
    assert result.number is None


def _raw(body: object) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


GOOD = {"h": "H1", "k": "q-1", "iat": NOW, "exp": NOW + 30, "n": b64url(b"\x01" * 12)}


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        (_raw({k: v for k, v in GOOD.items() if k != "n"}), "missing n"),
        (_raw(GOOD | {"x": 1}), "unknown x"),
        (_raw(GOOD | {"iat": float(NOW)}), "not an integer"),
        (_raw(GOOD | {"exp": 1.8e9}), "not an integer"),
        (_raw(GOOD | {"iat": True}), "iat must be an integer"),
        (_raw(GOOD | {"exp": str(NOW)}), "exp must be an integer"),
        (_raw(GOOD | {"h": 7}), "h must be a non-empty string"),
        (_raw(GOOD | {"k": ""}), "k must be a non-empty string"),
        (_raw(GOOD | {"n": b64url(b"\x01" * 11)}), "nonce: 11 bytes"),
        (_raw(GOOD | {"n": "AAAAAAAAAAAAAAAA=="}), "nonce: padded"),
        (_raw(GOOD | {"exp": NOW + 61}), "valid for 61 s"),
        (_raw(GOOD | {"exp": NOW - 1}), "before it was issued"),
        (json.dumps(GOOD, sort_keys=True).encode(), "not canonical"),
        (json.dumps(GOOD, separators=(",", ":")).encode(), "not canonical"),
        (_raw(GOOD)[:-1] + b',"h":"H1"}', "'h' twice"),
        (_raw(GOOD).replace(b'"iat":', b'"iat":NaN,"x":'), "not JSON"),
        (_raw([GOOD]), "not a JSON object"),
        (b"\xff\xfe", "not UTF-8"),
        (_raw(GOOD | {"h": "\ud800"}), "not Unicode text"),
        (b"", "payload: not base64url"),
    ],
)
def test_a_malformed_payload_is_invalid_even_when_signed(payload: bytes, says: str) -> None:
    fault = refused(PHONE.sign(payload))
    assert fault.reason is Reason.QR_INVALID
    assert says in fault.detail
    assert fault.holder_id is None


def test_the_shape_of_the_text_is_checked_before_anything_else() -> None:
    token = PHONE.token(NOW)
    _, payload, signature = token.split(".")
    cases = {
        "YKT2." + token[5:]: "not a YKT1 code",
        "ykt1." + token[5:]: "not a YKT1 code",
        " " + token: "not a YKT1 code",
        "": "not a YKT1 code",
        token + ".x": "4 dot-separated parts",
        f"YKT1.{payload}": "2 dot-separated parts",
        f"YKT1.{payload}==.{signature}": "payload: padded",
        f"YKT1.{payload}.{signature}==": "signature: padded",
        f"YKT1.{payload}.{signature[:-1]}+": "signature: not base64url",
        f"YKT1.{payload}.{signature[:-2]}": "signature: 63 bytes",
        f"YKT1.{payload}.{signature}AAA": "impossible length",
        f"YKT1.{payload}.{signature}A": "signature: 65 bytes",
        f"YKT1.{payload}.": "signature: not base64url",
        token + "\n": "signature: not base64url",
        "YKT1." + "A" * 2000: "far longer",
    }
    for text, says in cases.items():
        fault = refused(text)
        assert fault.reason is Reason.QR_INVALID, text
        assert says in fault.detail, (text, fault.detail)


def test_base64_with_the_unused_bits_set_is_another_spelling_and_refused() -> None:
    token = PHONE.token(NOW)
    head, signature = token.rsplit(".", 1)
    # 64 bytes leave 4 bits of the last character unused: with one of them set, it decodes to
    # the same signature.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(signature[-1])
    assert index % 16 == 0
    twin = alphabet[index + 1]
    assert base64.urlsafe_b64decode(signature + "==") == base64.urlsafe_b64decode(
        signature[:-1] + twin + "=="
    )
    assert "not the canonical base64url" in refused(f"{head}.{signature[:-1]}{twin}").detail


def test_a_code_signed_by_another_key_is_invalid() -> None:
    fault = refused(OTHER.token(NOW))
    assert fault.reason is Reason.QR_INVALID
    assert "signature does not verify" in fault.detail
    assert fault.holder_id is None


def test_unknown_holders_keys_and_broken_keys_from_hq() -> None:
    assert refused(PhoneKey("H9", "q-1").token(NOW)).reason is Reason.QR_UNKNOWN_KEY
    assert refused(PhoneKey("H1", "q-2").token(NOW)).reason is Reason.QR_UNKNOWN_KEY
    for pub in ("not base64!", base64.b64encode(b"\x01" * 31).decode()):
        fault = check_token(PHONE.token(NOW), lookup({"H1": {"q-1": pub}}), NOW, never_seen)
        assert isinstance(fault, QrFault)
        assert fault.reason is Reason.QR_UNKNOWN_KEY
        assert "not a 32-byte Ed25519 key" in fault.detail


def test_time_window_and_skew_boundaries() -> None:
    token = PHONE.token(NOW, NOW + 60)
    assert isinstance(check(token, now=NOW - 5), QrCredential)  # iat <= now + skew
    assert refused(token, now=NOW - 6).reason is Reason.QR_INVALID  # from the future
    assert "6 s in the future" in refused(token, now=NOW - 6).detail
    assert isinstance(check(token, now=NOW + 65), QrCredential)  # now <= exp + skew
    expired = refused(token, now=NOW + 66)
    assert (expired.reason, expired.holder_id, expired.key_id) == (Reason.QR_EXPIRED, "H1", "q-1")
    assert "expired 6 s ago" in expired.detail
    assert refused(token, now=NOW + 61, skew=0).reason is Reason.QR_EXPIRED
    assert isinstance(check(token, now=NOW + 60, skew=0), QrCredential)


def test_a_nonce_already_accepted_is_a_replay() -> None:
    token = PHONE.token(NOW, nonce=b"\x05" * 12)
    seen = {("H1", b64url(b"\x05" * 12))}
    result = check_token(token, lookup(PHONE.keys()), NOW, lambda h, n: (h, n) in seen)
    assert isinstance(result, QrFault)
    assert (result.reason, result.holder_id) == (Reason.QR_REPLAYED, "H1")


def test_an_unsigned_payload_tells_nothing_about_time_or_reuse() -> None:
    # An old forged code is invalid, not expired: expiry is only told of genuine codes.
    fault = refused(OTHER.token(NOW - 3600))
    assert fault.reason is Reason.QR_INVALID


def test_parse_token_reads_the_claims_without_verifying() -> None:
    claims = parse_token(OTHER.token(NOW))
    assert not isinstance(claims, QrFault)
    assert (claims.holder_id, claims.key_id, claims.iat, claims.exp) == ("H1", "q-1", NOW, NOW + 30)
