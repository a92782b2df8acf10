"""PINs are stored only as salted PBKDF2 hashes: ``pbkdf2_sha256$<iterations>$<salt>$<hash>``.

Six digits are a million possibilities, so a stolen hash falls to brute force whatever the
iteration count; what protects a PIN is the lockout after a few wrong tries. The iterations only
make that brute force cost something, while keeping a check on a Pi well under a second.
"""

import base64
import hashlib
import hmac

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 60_000


def hash_pin(pin: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS) -> str:
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ValueError("a PIN is 4 to 12 digits")
    if len(salt) < 8:
        raise ValueError("salt must be at least 8 bytes")
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    encode = base64.b64encode
    return f"{ALGORITHM}${iterations}${encode(salt).decode()}${encode(digest).decode()}"


def verify_pin(pin: str, stored: str | None) -> bool:
    """True only for a well-formed stored hash that ``pin`` matches; never raises."""
    if stored is None or not pin.isdigit():
        return False
    try:
        algorithm, iterations, salt, digest = stored.split("$")
        rounds = int(iterations)
        expected = base64.b64decode(digest, validate=True)
        salt_bytes = base64.b64decode(salt, validate=True)
    except ValueError:
        return False
    if algorithm != ALGORITHM or not 1 <= rounds <= 10_000_000:
        return False
    actual = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt_bytes, rounds)
    return hmac.compare_digest(actual, expected)


def mask_name(name: str) -> str:
    """What a customer display shows of a name: the family name only (张伟 -> 张*)."""
    return name[:1] + "*" * max(0, len(name) - 1)
