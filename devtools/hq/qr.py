"""``ykt hq qr``: electronic-card device keys at the card office, and a phone app's stand-in.

``keygen`` makes an Ed25519 device key for a holder, publishes its public half in the holder's
``holder.upsert`` (``qr_keys``) and hands the private half over once, as enrolling a phone
would. The stand-in phone keeps it under ``DIR/phone/`` (0600), which a real HQ never has: the
key is the phone's. ``token`` is what the phone app shows, a fresh code (docs/qr.md), as text or
as a PNG (segno); ``revoke`` publishes the holder without the key, which every terminal then
refuses at once.
"""

import argparse
import base64
import json
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from devtools.hq.db import HqDb
from devtools.hq.office import Office, OfficeError
from models.canonical import canonical_json
from models.qr import MAX_LIFETIME_S, NONCE_BYTES, PREFIX, encode_unpadded
from sync.keys import key_id

PHONE_DIR = "phone"
DEFAULT_LIFETIME_S = 30
_FILE_SAFE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")


def make_token(
    key: Ed25519PrivateKey,
    holder_id: str,
    k: str,
    *,
    now: int,
    lifetime: int = DEFAULT_LIFETIME_S,
    nonce: bytes | None = None,
) -> str:
    """A v1 code: ``YKT1.<payload>.<signature>``, valid from ``now`` for ``lifetime`` seconds."""
    if not 0 <= lifetime <= MAX_LIFETIME_S:
        raise OfficeError(f"a code lives 0..{MAX_LIFETIME_S} s, not {lifetime}")
    payload = {
        "exp": now + lifetime,
        "h": holder_id,
        "iat": now,
        "k": k,
        "n": encode_unpadded(nonce if nonce is not None else secrets.token_bytes(NONCE_BYTES)),
    }
    signed = PREFIX + encode_unpadded(canonical_json(payload))
    return signed + "." + encode_unpadded(key.sign(signed.encode("ascii")))


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def _phone_file(site: Path, holder_id: str, k: str) -> Path:
    for what, name in (("holder id", holder_id), ("key id", k)):
        if not _FILE_SAFE.fullmatch(name):
            raise OfficeError(f"{what} {name!r} cannot name the phone's key file")
    return site / PHONE_DIR / f"{holder_id}.{k}.key"


def _publish(office: Office, holder_id: str, keys: list[dict[str, str]]) -> int:
    with office.db.tx() as conn:
        holder = office._holder(conn, holder_id)
    return office.upsert_holder(holder | {"qr_keys": keys})


def keygen(office: Office, site: Path, holder_id: str) -> dict[str, str]:
    """A new device key for ``holder_id``, published; returns holder, k, pub and priv."""
    with office.db.tx() as conn:
        holder = office._holder(conn, holder_id)
    key = Ed25519PrivateKey.generate()
    k = key_id(key.public_key(), "q-")
    pub = base64.b64encode(_raw_public(key)).decode("ascii")
    listed = [entry for entry in holder.get("qr_keys", []) if entry.get("k") != k]
    path = _phone_file(site, holder_id, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(_raw_private(key))
    _publish(office, holder_id, [*listed, {"k": k, "pub": pub}])
    priv = base64.b64encode(_raw_private(key)).decode("ascii")
    return {"holder": holder_id, "k": k, "pub": pub, "priv": priv}


def revoke(office: Office, site: Path, holder_id: str, k: str) -> int:
    with office.db.tx() as conn:
        holder = office._holder(conn, holder_id)
    listed = holder.get("qr_keys", [])
    kept = [entry for entry in listed if entry.get("k") != k]
    if len(kept) == len(listed):
        raise OfficeError(f"holder {holder_id} has no QR key {k}")
    seq = _publish(office, holder_id, kept)
    _phone_file(site, holder_id, k).unlink(missing_ok=True)
    return seq


def phone_key(site: Path, holder_id: str, k: str, priv: str | None) -> Ed25519PrivateKey:
    """The phone's key: ``priv`` (base64 of the raw 32 bytes) or the stand-in phone's file."""
    try:
        raw = (
            base64.b64decode(priv, validate=True)
            if priv is not None
            else _phone_file(site, holder_id, k).read_bytes()
        )
    except OSError:
        raise OfficeError(f"no phone key {k} of holder {holder_id} here (give --priv)") from None
    except ValueError:
        raise OfficeError("--priv: not base64") from None
    if len(raw) != 32:
        raise OfficeError("an Ed25519 private key is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(raw)


def _keygen(args: argparse.Namespace) -> int:
    made = keygen(Office(HqDb(args.dir)), args.dir, args.holder)
    if args.json:
        sys.stdout.write(json.dumps(made) + "\n")
    else:
        sys.stdout.write(
            f"holder {made['holder']}: QR key {made['k']} published (public key {made['pub']})\n"
            f"private key, shown this once (the phone's): {made['priv']}\n"
        )
    return 0


def _token(args: argparse.Namespace) -> int:
    key = phone_key(args.dir, args.holder, args.key, args.priv)
    token = make_token(key, args.holder, args.key, now=int(time.time()), lifetime=args.lifetime)
    if args.png is not None:
        # Imported here: only a PNG needs it, and it is a development dependency.
        import segno  # noqa: PLC0415

        # What the phone shows (CARD.md): byte mode, error correction M.
        segno.make(token, error="m", mode="byte", boost_error=False).save(args.png, scale=6)
    sys.stdout.write(token + "\n")
    if args.png is not None and not args.json:
        sys.stdout.write(f"written to {args.png}\n")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    seq = revoke(Office(HqDb(args.dir)), args.dir, args.holder, args.key)
    if not args.json:
        sys.stdout.write(f"holder {args.holder}: QR key {args.key} revoked at change {seq}\n")
    return 0


def add_qr_commands(sub: Any) -> None:
    """``hq qr keygen|token|revoke`` (``sub``: hq's subparsers)."""
    qr = sub.add_parser("qr", help="electronic-card QR keys, and codes as a phone would show")
    commands = qr.add_subparsers(dest="qr_command", required=True, metavar="ACTION")
    keygen_parser = commands.add_parser("keygen", help="make and publish a holder's device key")
    keygen_parser.set_defaults(handler=_keygen)
    token_parser = commands.add_parser("token", help="a fresh code (the phone app's stand-in)")
    token_parser.set_defaults(handler=_token)
    revoke_parser = commands.add_parser("revoke", help="stop listing a device key")
    revoke_parser.set_defaults(handler=_revoke)
    for parser in (keygen_parser, token_parser, revoke_parser):
        parser.add_argument("--holder", required=True, help="holder id")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
    for parser in (token_parser, revoke_parser):
        parser.add_argument("--key", required=True, help="the key id keygen printed (q-...)")
    token_parser.add_argument("--png", type=Path, help="also write the code as a PNG image")
    token_parser.add_argument(
        "--priv", help="the private key (base64) instead of the stand-in phone's file"
    )
    token_parser.add_argument(
        "--lifetime",
        type=int,
        default=DEFAULT_LIFETIME_S,
        help=f"seconds the code is valid (at most {MAX_LIFETIME_S})",
    )
