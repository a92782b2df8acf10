"""Ed25519 key files and key ids: the terminal's own key pair, HQ's keys.

The terminal's key is generated on first start into a file only its user can read (0600, created
with that mode so it is never briefly world-readable); its public key is what the card office
enrols at HQ. Which HQ keys a terminal trusts is ``sync.keyset``'s business.
"""

import hashlib
import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from models.errors import SyncError
from sync.envelope import public_key_b64

logger = logging.getLogger(__name__)


def key_id(key: Ed25519PublicKey, prefix: str = "") -> str:
    """A short, stable id for a public key: the first 16 hex digits of its SHA-256."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return prefix + hashlib.sha256(raw).hexdigest()[:16]


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` as PEM to a new file with mode 0600; refuses to overwrite."""
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())


def read_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode & 0o777
        data = path.read_bytes()
    except OSError as exc:
        raise SyncError(f"cannot read the signing key {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise SyncError(f"signing key {path} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        key = load_pem_private_key(data, password=None)
    except ValueError:
        raise SyncError(f"{path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SyncError(f"{path} is not an Ed25519 key")
    return key


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """The key in ``path``, generated on first use."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        try:
            write_private_key(path, key)
        except FileExistsError:  # another process won the race: use its key
            return read_private_key(path)
        logger.info(
            "generated this terminal's signing key %s (public key %s)",
            key_id(key.public_key(), "t-"),
            public_key_b64(key.public_key()),
        )
        return key
    return read_private_key(path)
