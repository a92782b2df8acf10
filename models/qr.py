"""The electronic card (电子卡): a QR code signed by the holder's phone, checked offline.

A code's text is ``YKT1.<P>.<S>`` (docs/qr.md): ``P`` the unpadded base64url of the canonical
JSON payload ``{"exp","h","iat","k","n"}``, ``S`` the unpadded base64url of the Ed25519
signature over the ASCII bytes ``YKT1.`` + ``P``. :func:`check_token` turns a code into a
:class:`QrCredential` or says why not (:class:`QrFault`), as a pure function of the text, the
holder's public keys, the time and the nonces already accepted: no clock, no store.

Everything the text could be is an answer, never an exception: a code is whatever a stranger
holds up to the camera. Only one spelling of a token is accepted (canonical base64, canonical
JSON), so no two texts are the same token and a changed character is always a refused code.
"""

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from models.canonical import canonical_json
from models.reasons import Reason

PREFIX = "YKT1."
MAX_LIFETIME_S = 60  # exp - iat: a screenshot is worth a minute at most
DEFAULT_SKEW_S = 5  # phone and terminal clocks disagree by a few seconds
NONCE_BYTES = 12
SIGNATURE_BYTES = 64
# A v1 token is about 220 characters; anything far longer is not one, and is not decoded.
MAX_TEXT = 1024
FIELDS = frozenset({"h", "k", "iat", "exp", "n"})
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

# A holder id -> that holder's QR public keys (key id -> base64 of the raw 32-byte key).
KeysOf = Callable[[str], Mapping[str, str]]
# (holder id, nonce) -> whether a code with this nonce was already accepted here.
Seen = Callable[[str, str], bool]


@dataclass(frozen=True, slots=True)
class QrCredential:
    """A verified code: it names its holder, who is then judged on their standing like a face.

    ``keep_until`` (unix seconds) is how long the nonce must be remembered once accepted: past
    it the code is refused as expired anyway.
    """

    holder_id: str
    key_id: str
    nonce: str
    iat: int
    exp: int
    keep_until: int

    @property
    def number(self) -> None:
        """A code carries no card number."""
        return None


@dataclass(frozen=True, slots=True)
class QrFault:
    """A code that is not a credential, and why. ``holder_id`` only when the signature proved
    whose it is (expired, replayed): an unverified payload names nobody."""

    reason: Reason
    detail: str
    holder_id: str | None = None
    key_id: str | None = None

    @property
    def number(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class QrClaims:
    """What a well-formed payload says, before anything about it is verified."""

    holder_id: str
    key_id: str
    iat: int
    exp: int
    nonce: str
    signed: bytes  # the ASCII bytes the signature covers
    signature: bytes


def _shown(text: str) -> str:
    """An id from an unverified payload, short enough for a log line."""
    return repr(text if len(text) <= 32 else text[:32] + "…")


def _invalid(detail: str) -> QrFault:
    return QrFault(Reason.QR_INVALID, detail)


def _unpadded(text: str, what: str) -> bytes | QrFault:
    """RFC 4648 section 5 without padding, in its one canonical spelling (unused bits zero)."""
    if "=" in text:
        return _invalid(f"{what}: padded base64 ('=' is stripped in this format)")
    if not _BASE64URL.fullmatch(text):
        return _invalid(f"{what}: not base64url")
    if len(text) % 4 == 1:
        return _invalid(f"{what}: base64url of impossible length {len(text)}")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return _invalid(f"{what}: not base64url")
    if encode_unpadded(raw) != text:
        return _invalid(f"{what}: not the canonical base64url of its bytes")
    return raw


def encode_unpadded(raw: bytes) -> str:
    """Base64url without padding (the token's encoding)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _no_floats(text: str) -> Any:
    raise ValueError(f"a number that is not an integer ({text})")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise ValueError(f"field {key!r} twice")
        found[key] = value
    return found


def _payload(raw: bytes) -> dict[str, Any] | QrFault:
    try:
        value = json.loads(
            raw.decode("utf-8"),
            parse_float=_no_floats,
            parse_constant=_no_floats,
            object_pairs_hook=_unique_keys,
        )
    except UnicodeDecodeError:
        return _invalid("payload: not UTF-8")
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
        return _invalid(f"payload: not JSON ({exc})")
    if not isinstance(value, dict):
        return _invalid("payload: not a JSON object")
    missing, extra = sorted(FIELDS - value.keys()), sorted(value.keys() - FIELDS)
    if missing or extra:
        parts = ([f"missing {','.join(missing)}"] if missing else []) + (
            [f"unknown {','.join(extra)}"] if extra else []
        )
        return _invalid("payload: " + "; ".join(parts))
    for key in ("h", "k", "n"):
        if not isinstance(value[key], str) or not value[key]:
            return _invalid(f"payload: {key} must be a non-empty string")
    for key in ("iat", "exp"):
        # bool is an int to Python, and true is no time.
        if isinstance(value[key], bool) or not isinstance(value[key], int):
            return _invalid(f"payload: {key} must be an integer (unix seconds)")
    try:
        canonical = canonical_json(value)
    except UnicodeEncodeError:  # "\ud800" is valid JSON, but no UTF-8 text
        return _invalid("payload: a string that is not Unicode text")
    if canonical != raw:
        return _invalid("payload: not canonical JSON (sorted keys, no spaces)")
    return value


def parse_token(text: str) -> QrClaims | QrFault:
    """The claims of a well-formed v1 token, unverified; or why it is not one."""
    if len(text) > MAX_TEXT:
        return _invalid(f"{len(text)} characters: far longer than a v1 token")
    if not text.startswith(PREFIX):
        shown = text[:8].encode("unicode_escape").decode("ascii")
        return _invalid(f"not a {PREFIX[:-1]} code (starts {shown!r})")
    parts = text[len(PREFIX) :].split(".")
    if len(parts) != 2:
        return _invalid(f"{len(parts) + 1} dot-separated parts, a v1 token has 3")
    encoded, encoded_signature = parts
    raw = _unpadded(encoded, "payload")
    if isinstance(raw, QrFault):
        return raw
    signature = _unpadded(encoded_signature, "signature")
    if isinstance(signature, QrFault):
        return signature
    if len(signature) != SIGNATURE_BYTES:
        return _invalid(f"signature: {len(signature)} bytes, Ed25519 has {SIGNATURE_BYTES}")
    payload = _payload(raw)
    if isinstance(payload, QrFault):
        return payload
    nonce = _unpadded(payload["n"], "nonce")
    if isinstance(nonce, QrFault):
        return nonce
    if len(nonce) != NONCE_BYTES:
        return _invalid(f"nonce: {len(nonce)} bytes, v1 has {NONCE_BYTES}")
    iat, exp = payload["iat"], payload["exp"]
    if exp < iat:
        return _invalid(f"expires {iat - exp} s before it was issued")
    if exp - iat > MAX_LIFETIME_S:
        return _invalid(f"valid for {exp - iat} s, at most {MAX_LIFETIME_S}")
    return QrClaims(
        payload["h"],
        payload["k"],
        iat,
        exp,
        payload["n"],
        (PREFIX + encoded).encode("ascii"),
        signature,
    )


def _public_key(text: str) -> Ed25519PublicKey | None:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32 else None


def check_token(
    text: str, keys_of: KeysOf, now: int, seen: Seen, *, skew: int = DEFAULT_SKEW_S
) -> QrCredential | QrFault:
    """Verify ``text`` at ``now`` (unix seconds, whole): the holder's key, the signature, the
    time window widened by ``skew`` on both sides, and that its nonce is new.

    The order matters for what a refusal may say: nothing about time or reuse is told, and no
    holder named, before the signature proved the payload genuine.
    """
    claims = parse_token(text)
    if isinstance(claims, QrFault):
        return claims
    holder_id, key_id = claims.holder_id, claims.key_id
    encoded = keys_of(holder_id).get(key_id)
    if encoded is None:
        return QrFault(
            Reason.QR_UNKNOWN_KEY, f"no key {_shown(key_id)} for holder {_shown(holder_id)}"
        )
    key = _public_key(encoded)
    if key is None:
        return QrFault(
            Reason.QR_UNKNOWN_KEY, f"key {_shown(key_id)} from HQ is not a 32-byte Ed25519 key"
        )
    try:
        key.verify(claims.signature, claims.signed)
    except InvalidSignature:
        return _invalid(f"signature does not verify with key {_shown(key_id)}")
    if claims.iat > now + skew:
        return QrFault(
            Reason.QR_INVALID,
            f"issued {claims.iat - now} s in the future: the phone's or this terminal's clock "
            "is wrong",
            holder_id,
            key_id,
        )
    if now > claims.exp + skew:
        return QrFault(Reason.QR_EXPIRED, f"expired {now - claims.exp} s ago", holder_id, key_id)
    if seen(holder_id, claims.nonce):
        return QrFault(Reason.QR_REPLAYED, "this code was already used here", holder_id, key_id)
    return QrCredential(holder_id, key_id, claims.nonce, claims.iat, claims.exp, claims.exp + skew)
