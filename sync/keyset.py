"""The site's keyset: which online HQ keys a terminal trusts, signed by an offline root key.

HQ's online key signs every envelope, so it lives on a server and can be stolen. It must not be
able to choose its own successors: the list of online keys is a separate statement, signed by a
key-management ("root") key that is kept offline and pinned in each terminal's config. The
statement is the whole set, not a delta, with a version that only grows:

    {"type": "ykt-keyset", "v": 1, "site", "version", "issued",
     "keys": [{"kid", "pub", "not_after"}], "by", "sig"}

``sig`` is Ed25519 by the root key over the canonical JSON without ``sig``. A kid is the key id
of its public key (``hq-`` + 16 hex of SHA-256), so a kid can never be re-bound to another key;
a key missing from a newer set is revoked; a key past ``not_after`` is no longer trusted. The
statement travels outside any envelope (retained on the site's ``keys`` topic): a terminal that
missed a rotation must be able to learn the new online key without trusting it first.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from models.canonical import canonical_json
from models.timefmt import rfc3339
from sync.envelope import (
    Rejected,
    Rejection,
    b64decode,
    b64encode,
    load_object,
    parse_rfc3339,
    public_key_b64,
    public_key_from_b64,
)
from sync.keys import key_id

KEYSET_TYPE = "ykt-keyset"
KEYSET_VERSION = 1
ONLINE_PREFIX = "hq-"
ROOT_PREFIX = "root-"
MAX_KEYSET_BYTES = 64 * 1024
MAX_KEYS = 16
# The terminal's clock and HQ's may disagree: a key is honoured this long past its not_after.
EXPIRY_GRACE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class OnlineKey:
    kid: str
    key: Ed25519PublicKey
    not_after: datetime


@dataclass(frozen=True, slots=True)
class Keyset:
    site: str
    version: int
    issued: str
    keys: tuple[OnlineKey, ...]
    payload: bytes  # exactly as verified, for the store and for HQ to publish again


def _refuse(detail: str) -> Rejected:
    return Rejected(Rejection.BAD_FIELD, f"keyset: {detail}")


def sign_keyset(
    root: Ed25519PrivateKey,
    site: str,
    version: int,
    keys: Iterable[tuple[Ed25519PublicKey, datetime]],
    *,
    issued: datetime | None = None,
) -> bytes:
    """The signed statement that exactly ``keys`` (each with its end of validity) are trusted."""
    statement = {
        "type": KEYSET_TYPE,
        "v": KEYSET_VERSION,
        "site": site,
        "version": version,
        "issued": rfc3339(issued or datetime.now(UTC)),
        "keys": [
            {
                "kid": key_id(pub, ONLINE_PREFIX),
                "pub": public_key_b64(pub),
                "not_after": rfc3339(end),
            }
            for pub, end in keys
        ],
        "by": key_id(root.public_key(), ROOT_PREFIX),
    }
    statement["sig"] = b64encode(root.sign(canonical_json(statement)))
    return canonical_json(statement)


def open_keyset(payload: bytes, root: Ed25519PublicKey, *, site: str) -> Keyset:
    """Check and verify a keyset statement; raises :class:`Rejected` with the failed check."""
    data = load_object(payload, MAX_KEYSET_BYTES)
    if data.get("type") != KEYSET_TYPE:
        raise Rejected(Rejection.WRONG_TYPE, repr(data.get("type"))[:64])
    if data.get("v") != KEYSET_VERSION or isinstance(data.get("v"), bool):
        raise Rejected(Rejection.UNKNOWN_VERSION, repr(data.get("v"))[:64])
    if data.get("site") != site:
        raise Rejected(Rejection.WRONG_SITE, repr(data.get("site"))[:64])
    if data.get("by") != key_id(root, ROOT_PREFIX):
        raise Rejected(Rejection.UNKNOWN_KID, f"keyset signed by {str(data.get('by'))[:64]!r}")
    sig_text = data.pop("sig", None)
    if sig_text is None:
        raise Rejected(Rejection.MISSING_SIG, "keyset")
    signature = b64decode(sig_text, "sig")
    try:
        root.verify(signature, canonical_json(data))
    except (ValueError, TypeError):
        raise Rejected(Rejection.NOT_JSON, "keyset: not encodable") from None
    except InvalidSignature:
        raise Rejected(Rejection.BAD_SIG, "keyset") from None
    # Signed by the root key from here on; the shape is still checked, so that a root key
    # holder's mistake is a refusal and not a crash.
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _refuse("version: a positive integer")
    issued = data.get("issued")
    parse_rfc3339(issued, "keyset.issued")
    raw_keys = data.get("keys")
    if not isinstance(raw_keys, list) or not raw_keys or len(raw_keys) > MAX_KEYS:
        raise _refuse(f"keys: a list of 1..{MAX_KEYS}")
    keys = tuple(_online_key(item) for item in raw_keys)
    if len({k.kid for k in keys}) != len(keys):
        raise _refuse("a kid is listed twice")
    return Keyset(site, version, str(issued), keys, payload)


def _online_key(item: object) -> OnlineKey:
    if not isinstance(item, dict):
        raise _refuse("keys: objects {kid, pub, not_after}")
    try:
        pub = public_key_from_b64(item.get("pub"))  # type: ignore[arg-type]
    except Rejected:
        raise _refuse("keys.pub: a base64 raw Ed25519 public key") from None
    kid = key_id(pub, ONLINE_PREFIX)
    if item.get("kid") != kid:
        # A kid that is not its key's id could later be shown for another key.
        raise _refuse(f"kid {str(item.get('kid'))[:64]!r} is not the id of its key ({kid})")
    return OnlineKey(kid, pub, parse_rfc3339(item.get("not_after"), "keys.not_after"))


class Keyring:
    """The online HQ keys trusted now: the config's first ones until a keyset replaces them."""

    def __init__(
        self,
        configured: Mapping[str, str],
        root: Ed25519PublicKey | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._configured = {kid: public_key_from_b64(pub) for kid, pub in configured.items()}
        self.root = root
        self._clock = clock
        self.keyset: Keyset | None = None

    @property
    def version(self) -> int:
        return self.keyset.version if self.keyset else 0

    def adopt(self, keyset: Keyset) -> bool:
        """Use ``keyset`` if it is newer than the one in use; ``False`` for an older one."""
        if keyset.version <= self.version:
            return False
        self.keyset = keyset
        return True

    def get(self, kid: str) -> Ed25519PublicKey | None:
        if self.keyset is None:
            return self._configured.get(kid)
        now = self._clock()
        for online in self.keyset.keys:
            if online.kid == kid and now <= online.not_after + EXPIRY_GRACE:
                return online.key
        return None

    def __call__(self, kid: str) -> Ed25519PublicKey | None:
        return self.get(kid)

    def kids(self) -> list[str]:
        if self.keyset is None:
            return sorted(self._configured)
        return sorted(k.kid for k in self.keyset.keys if self.get(k.kid) is not None)
