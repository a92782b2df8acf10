"""Electronic-card tokens for tests: signed with keys from fixed seeds, so every run is the same.

The acceptance test (tests/integration/test_qr_acceptance.py) has its own maker written from the
format alone; this one serves the unit and property tests.
"""

import base64
import json
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class PhoneKey:
    """A holder's device key, made from a 32-byte seed."""

    holder_id: str
    key_id: str
    seed: bytes = bytes(range(32))

    @property
    def private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def pub(self) -> str:
        """Base64 of the raw public key, as HQ lists it in qr_keys."""
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    def keys(self) -> dict[str, dict[str, str]]:
        """holder id -> {key id: pub}, for ``check_token``'s lookup."""
        return {self.holder_id: {self.key_id: self.pub}}

    def token(
        self, iat: int, exp: int | None = None, nonce: bytes = b"\x01" * 12, **payload: Any
    ) -> str:
        body = {
            "h": self.holder_id,
            "k": self.key_id,
            "iat": iat,
            "exp": iat + 30 if exp is None else exp,
            "n": b64url(nonce),
        } | payload
        return self.sign(
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        )

    def sign(self, payload: bytes) -> str:
        encoded = "YKT1." + b64url(payload)
        return encoded + "." + b64url(self.private.sign(encoded.encode("ascii")))


def lookup(keys: dict[str, dict[str, str]]) -> Any:
    return lambda holder_id: keys.get(holder_id, {})


def never_seen(holder_id: str, nonce: str) -> bool:
    return False
