"""Protocol envelopes: canonical JSON, Ed25519 signatures, and every reason a message is refused.

An envelope is ``{"v","type","site","tid"?,"id","ts","body","kid","sig"}``; ``sig`` is base64
Ed25519 over the canonical JSON of the envelope without ``sig`` (``models.canonical``: keys
sorted, no spaces, UTF-8, no floats). Opening a message checks, in this order, size, JSON shape,
major version, site, terminal, key id and signature, so the cheap checks run before the
cryptography and a message from the wrong site is never worth a signature check.
"""

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from uuid6 import uuid7

from models import timefmt
from models.canonical import canonical_json
from models.errors import SyncError

PROTOCOL_MAJOR = 1
DEFAULT_MAX_BYTES = 1 << 20
_REQUIRED = ("v", "type", "site", "id", "ts", "body", "kid")
_MAX_ID = 128


class Rejection(StrEnum):
    """Why a message was refused; the values are counter names in the status and logs."""

    OVERSIZE = "oversize"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    UNKNOWN_VERSION = "unknown_version"
    WRONG_TYPE = "wrong_type"
    WRONG_SITE = "wrong_site"
    WRONG_TERMINAL = "wrong_terminal"
    UNKNOWN_KID = "unknown_kid"
    MISSING_SIG = "missing_sig"
    BAD_SIG = "bad_sig"
    BAD_BODY = "bad_body"
    STALE = "stale"
    EXPIRED = "expired"


class Rejected(SyncError):  # noqa: N818 - a verdict on a message, read as one
    """Raised when a message is refused; ``reason`` says which check failed."""

    def __init__(self, reason: Rejection, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified message: every field has been checked and the signature holds."""

    v: int
    type: str
    site: str
    id: str
    ts: str
    body: Mapping[str, Any]
    kid: str
    tid: str | None = None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: Any, what: str) -> bytes:
    """Strict base64 (padding and alphabet checked); raises ``Rejected`` naming ``what``."""
    if not isinstance(text, str):
        raise Rejected(Rejection.BAD_FIELD, f"{what} must be a base64 string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise Rejected(Rejection.BAD_FIELD, f"{what} is not valid base64") from None


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """A raw 32-byte Ed25519 public key in base64, as configs and ``keys`` changes carry it."""
    raw = b64decode(text, "public key")
    if len(raw) != 32:
        raise Rejected(Rejection.BAD_FIELD, "an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_b64(key: Ed25519PublicKey) -> str:
    return b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def now_rfc3339() -> str:
    return timefmt.utc_now()


def parse_rfc3339(text: Any, what: str) -> datetime:
    """An RFC 3339 time with an offset (``Z`` or ``+08:00``); naive times are refused."""
    if not isinstance(text, str):
        raise Rejected(Rejection.BAD_FIELD, f"{what} must be an RFC 3339 string")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Rejected(Rejection.BAD_FIELD, f"{what} is not an RFC 3339 time") from None
    if value.tzinfo is None:
        raise Rejected(Rejection.BAD_FIELD, f"{what} has no UTC offset")
    return value


class Signer:
    """Signs outgoing envelopes with one private key known to the other side by ``kid``."""

    def __init__(self, kid: str, key: Ed25519PrivateKey) -> None:
        self.kid = kid
        self._key = key

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def seal(
        self,
        msg_type: str,
        site: str,
        body: Mapping[str, Any],
        *,
        tid: str | None = None,
        msg_id: str | None = None,
        ts: str | None = None,
    ) -> bytes:
        """The signed payload; raises ``TypeError`` for a float anywhere in ``body``."""
        envelope: dict[str, Any] = {
            "v": PROTOCOL_MAJOR,
            "type": msg_type,
            "site": site,
            "id": msg_id or str(uuid7()),
            "ts": ts or now_rfc3339(),
            "body": body,
            "kid": self.kid,
        }
        if tid is not None:
            envelope["tid"] = tid
        envelope["sig"] = b64encode(self._key.sign(canonical_json(envelope)))
        return canonical_json(envelope)

    def __repr__(self) -> str:  # never the key itself
        return f"Signer(kid={self.kid!r})"


def _no_floats(text: str) -> Any:
    raise ValueError("floats are not allowed (money is integer fen)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers that keep different duplicates would disagree on what was signed.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def loads_strict(payload: bytes) -> Any:
    """JSON with no floats, no NaN/Infinity and no duplicate keys; ``ValueError`` otherwise."""
    return json.loads(
        payload.decode("utf-8"),
        parse_float=_no_floats,
        parse_constant=_no_floats,
        object_pairs_hook=_unique_keys,
    )


def load_object(payload: bytes, max_bytes: int) -> dict[str, Any]:
    """One strict JSON object of at most ``max_bytes``, or the :class:`Rejected` saying why."""
    if len(payload) > max_bytes:
        raise Rejected(Rejection.OVERSIZE, f"{len(payload)} bytes > {max_bytes}")
    try:
        data = loads_strict(payload)
    except (ValueError, RecursionError) as exc:
        raise Rejected(Rejection.NOT_JSON, str(exc)[:100]) from None
    if not isinstance(data, dict):
        raise Rejected(Rejection.NOT_OBJECT, type(data).__name__)
    return data


def loads_content(payload: bytes) -> Any:
    """JSON inside an already verified message (snapshot lines): floats refused, and no
    duplicate-key check — the signer is trusted there, and the check costs a third of the time."""
    return json.loads(payload.decode("utf-8"), parse_float=_no_floats, parse_constant=_no_floats)


def _text_field(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise Rejected(Rejection.BAD_FIELD, f"{key} must be a non-empty string")
    return value


KeyLookup = Mapping[str, Ed25519PublicKey] | Callable[[str], Ed25519PublicKey | None]


def _lookup(keys: KeyLookup, kid: str) -> Ed25519PublicKey | None:
    if isinstance(keys, Mapping):
        return keys.get(kid)
    return keys(kid)


def open_envelope(
    payload: bytes,
    keys: KeyLookup,
    *,
    site: str,
    tid: str | None = None,
    require_tid: bool = False,
    types: frozenset[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Envelope:
    """Check and verify ``payload``; raises :class:`Rejected` with the first failed check.

    ``tid`` is this receiver's terminal id (or, at HQ, the terminal the topic belongs to): an
    envelope naming another terminal is refused. ``require_tid`` makes the field mandatory (HQ
    requires it of terminals); HQ's site-wide messages carry none.
    """
    data = load_object(payload, max_bytes)
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise Rejected(Rejection.MISSING_FIELD, ",".join(missing))
    version = data["v"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise Rejected(Rejection.BAD_FIELD, "v must be an integer")
    if version != PROTOCOL_MAJOR:
        raise Rejected(Rejection.UNKNOWN_VERSION, f"v={version}")
    msg_type = _text_field(data, "type")
    if types is not None and msg_type not in types:
        raise Rejected(Rejection.WRONG_TYPE, msg_type)
    if data["site"] != site:
        raise Rejected(Rejection.WRONG_SITE, repr(data["site"])[:_MAX_ID])
    sender_tid = data.get("tid")
    if sender_tid is None and require_tid:
        raise Rejected(Rejection.MISSING_FIELD, "tid")
    if sender_tid is not None and sender_tid != tid:
        raise Rejected(Rejection.WRONG_TERMINAL, repr(sender_tid)[:_MAX_ID])
    msg_id = _text_field(data, "id")
    ts = _text_field(data, "ts")
    parse_rfc3339(ts, "ts")
    body = data["body"]
    if not isinstance(body, dict):
        raise Rejected(Rejection.BAD_FIELD, "body must be an object")
    kid = _text_field(data, "kid")
    key = _lookup(keys, kid)
    if key is None:
        raise Rejected(Rejection.UNKNOWN_KID, kid)
    sig_text = data.pop("sig", None)
    if sig_text is None:
        raise Rejected(Rejection.MISSING_SIG)
    signature = b64decode(sig_text, "sig")
    try:
        signed = canonical_json(data)
    except (ValueError, TypeError) as exc:
        # Valid JSON can still be no text: a lone surrogate ("\ud800") has no UTF-8 form, so
        # nobody can have signed it. Refused here, it is one counted rejection, not an error
        # that drops the link and has the broker deliver it again for ever.
        raise Rejected(Rejection.NOT_JSON, f"not encodable: {str(exc)[:80]}") from None
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        raise Rejected(Rejection.BAD_SIG, f"kid {kid}") from None
    return Envelope(version, msg_type, data["site"], msg_id, ts, body, kid, sender_tid)
