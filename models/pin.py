"""PINs as HQ sends them, salted PBKDF2 (``pbkdf2_sha256$<iterations>$<salt>$<hash>``), and as a
terminal with a key store keeps them, sealed (``pbkdf2_sha256_keyed$<iterations>$<salt>$<mac>``).

Six digits are a million possibilities, so a PBKDF2 hash alone falls to brute force whatever the
iteration count: a copy of the database was enough. The sealed form replaces the digest with an
HMAC of it under a :class:`PinKey` that only the terminal's key store can produce and that is
never written down, so the database alone gives nothing to search (docs/privacy.md). What
protects a PIN at the till is still the lockout after a few wrong tries; the iterations keep a
check on a Pi well under a second.
"""

import base64
import hashlib
import hmac

ALGORITHM = "pbkdf2_sha256"
KEYED_ALGORITHM = "pbkdf2_sha256_keyed"
DEFAULT_ITERATIONS = 60_000
PIN_KEY_LENGTH = 16
# Domain separation: the same key answers nothing else with these inputs.
_SEAL_LABEL = b"ykt pin seal v1\x00"
_CHECK_LABEL = b"ykt pin key check v1"


def hash_pin(pin: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS) -> str:
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ValueError("a PIN is 4 to 12 digits")
    if len(salt) < 8:
        raise ValueError("salt must be at least 8 bytes")
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    encode = base64.b64encode
    return f"{ALGORITHM}${iterations}${encode(salt).decode()}${encode(digest).decode()}"


def _parse(stored: str) -> tuple[str, int, bytes, bytes] | None:
    """``(algorithm, iterations, salt, last field)`` of a well-formed stored hash."""
    try:
        algorithm, iterations, salt, digest = stored.split("$")
        rounds = int(iterations)
        last = base64.b64decode(digest, validate=True)
        salt_bytes = base64.b64decode(salt, validate=True)
    except ValueError:
        return None
    if algorithm not in (ALGORITHM, KEYED_ALGORITHM) or not 1 <= rounds <= 10_000_000:
        return None
    return algorithm, rounds, salt_bytes, last


class PinKey:
    """The secret PIN hashes are sealed with, derived from the key store; only in memory.

    ``check`` is a public fingerprint of the key: a terminal that finds hashes sealed under
    another key (a new PSAM, another key id) knows it cannot check them.
    """

    __slots__ = ("_key", "check")

    def __init__(self, key: bytes) -> None:
        if len(key) < PIN_KEY_LENGTH:
            raise ValueError(f"a PIN key has at least {PIN_KEY_LENGTH} bytes")
        self._key = bytes(key)
        self.check = hmac.new(self._key, _CHECK_LABEL, hashlib.sha256).hexdigest()[:16]

    def _mac(self, digest: bytes) -> bytes:
        return hmac.new(self._key, _SEAL_LABEL + digest, hashlib.sha256).digest()

    def seal(self, stored: str) -> str | None:
        """The sealed form of HQ's PBKDF2 hash (salt and iterations kept for the till); a sealed
        one unchanged; None when ``stored`` is not a hash at all."""
        parsed = _parse(stored)
        if parsed is None:
            return None
        algorithm, rounds, salt, digest = parsed
        if algorithm == KEYED_ALGORITHM:
            return stored
        encode = base64.b64encode
        mac = encode(self._mac(digest)).decode()
        return f"{KEYED_ALGORITHM}${rounds}${encode(salt).decode()}${mac}"

    def matches(self, digest: bytes, sealed: bytes) -> bool:
        return hmac.compare_digest(self._mac(digest), sealed)

    def __repr__(self) -> str:
        return f"PinKey(check={self.check})"

    def __reduce__(self) -> tuple[object, ...]:
        # A pickle would write the key wherever pickles go (caches, crash dumps).
        raise TypeError("a PIN key cannot be pickled")


def check_pin(pin: str, stored: str | None, key: PinKey | None = None) -> bool | None:
    """True when ``pin`` matches ``stored``, False when it does not (or nothing usable is
    stored); None when ``stored`` is sealed and ``key`` is missing: the PIN cannot be checked
    here now, which is not a wrong PIN. Never raises."""
    if stored is None or not pin.isdigit():
        return False
    parsed = _parse(stored)
    if parsed is None:
        return False
    algorithm, rounds, salt, expected = parsed
    if algorithm == KEYED_ALGORITHM:
        if key is None:
            return None
        return key.matches(hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, rounds), expected)
    actual = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, rounds)
    return hmac.compare_digest(actual, expected)


def verify_pin(pin: str, stored: str | None, key: PinKey | None = None) -> bool:
    """True only for a well-formed stored hash that ``pin`` matches; never raises."""
    return check_pin(pin, stored, key) is True


def mask_name(name: str) -> str:
    """What a customer display shows of a name: the family name only (张伟 -> 张*). Masking a
    masked name changes nothing, so the store may keep this form (docs/privacy.md)."""
    return name[:1] + "*" * max(0, len(name) - 1)
