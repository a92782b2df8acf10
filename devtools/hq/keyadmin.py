"""The site's keys at the reference HQ: the offline root key, the keyset it signs, rotation.

The root key signs only keysets, so it need not be on the HQ server: ``init`` writes it to a file
of its own, to be moved onto removable media, and ``keys rotate``/``keys revoke`` read it from
wherever it was mounted for the occasion. The online key (``hq-signing.key``) signs everything
else. Compromise recovery is in docs/protocol.md "Keys".
"""

import argparse
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from rich.console import Console

from devtools.hq.db import KEY_NAME, HqDb
from models.errors import SyncError
from sync.envelope import Rejected, public_key_b64, public_key_from_b64
from sync.keys import key_id, read_private_key, write_private_key
from sync.keyset import ROOT_PREFIX, Keyset, open_keyset, sign_keyset

ROOT_KEY_NAME = "hq-root.key"
DEFAULT_KEY_DAYS = 730
console = Console()


def root_public(db: HqDb) -> Ed25519PublicKey:
    pub = db.meta("root_pub")
    if pub is None:
        raise SyncError("this site has no root key yet: create one with 'ykt hq keys root'")
    return public_key_from_b64(pub)


def current_keyset(db: HqDb) -> Keyset | None:
    payload = db.meta("keyset")
    if payload is None:
        return None
    return open_keyset(payload.encode(), root_public(db), site=db.site)


def _read_root(db: HqDb, path: Path) -> Ed25519PrivateKey:
    root = read_private_key(path)
    if key_id(root.public_key(), ROOT_PREFIX) != key_id(root_public(db), ROOT_PREFIX):
        raise SyncError(f"{path} is not this site's root key")
    return root


def _install(db: HqDb, payload: bytes, version: int) -> None:
    open_keyset(payload, root_public(db), site=db.site)  # never store what terminals refuse
    with db.tx() as conn:
        db.set_meta(conn, "keyset", payload.decode())
        db.set_meta(conn, "keyset_version", str(version))


def make_root(
    db: HqDb, path: Path, days: int = DEFAULT_KEY_DAYS, *, replace: bool = False
) -> Keyset:
    """A root key for the site; its first keyset holds the online key in use.

    ``replace`` is for a root key stolen or lost: terminals keep refusing keysets until their
    config pins the new one, which is the point (docs/protocol.md, compromise recovery)."""
    if db.meta("root_pub") is not None and not replace:
        raise SyncError("this site already has a root key (--replace if it was compromised)")
    version = int(db.meta("keyset_version") or 0) + 1
    root = Ed25519PrivateKey.generate()
    write_private_key(path, root)
    with db.tx() as conn:
        db.set_meta(conn, "root_pub", public_key_b64(root.public_key()))
    online = db.signer().public_key
    until = datetime.now(UTC) + timedelta(days=days)
    payload = sign_keyset(root, db.site, version, [(online, until)])
    _install(db, payload, version)
    return open_keyset(payload, root.public_key(), site=db.site)


def _next_set(
    db: HqDb, root: Ed25519PrivateKey, keys: Iterable[tuple[Ed25519PublicKey, datetime]]
) -> Keyset:
    current = current_keyset(db)
    version = (current.version if current else 0) + 1
    payload = sign_keyset(root, db.site, version, list(keys))
    _install(db, payload, version)
    return open_keyset(payload, root.public_key(), site=db.site)


def rotate(
    db: HqDb, root_path: Path, *, revoke: Iterable[str] = (), days: int = DEFAULT_KEY_DAYS
) -> Keyset:
    """A new online key, trusted from the next keyset on and signing from then on.

    The old key stays in the set (messages it signed are still in flight) unless revoked. The
    new key file is written first, the keyset committed, then the file put in place: a crash in
    between leaves HQ signing with a key the set still trusts.
    """
    root = _read_root(db, root_path)
    gone = set(revoke)
    current = current_keyset(db)
    now = datetime.now(UTC)
    kept = [
        (k.key, k.not_after)
        for k in (current.keys if current else ())
        if k.kid not in gone and k.not_after > now
    ]
    fresh = Ed25519PrivateKey.generate()
    staged = db.root / f"{KEY_NAME}.next"
    staged.unlink(missing_ok=True)
    write_private_key(staged, fresh)
    keyset = _next_set(db, root, [*kept, (fresh.public_key(), now + timedelta(days=days))])
    staged.replace(db.root / KEY_NAME)
    return keyset


def revoke(db: HqDb, root_path: Path, kids: Iterable[str]) -> Keyset:
    """A keyset without ``kids``; the key HQ signs with cannot be revoked, rotate it instead."""
    root = _read_root(db, root_path)
    gone = set(kids)
    current = current_keyset(db)
    if current is None:
        raise SyncError("this site has no keyset yet")
    unknown = gone - {k.kid for k in current.keys}
    if unknown:
        raise SyncError(f"not in the keyset: {', '.join(sorted(unknown))}")
    if db.signer().kid in gone:
        raise SyncError("that key signs HQ's messages now: 'ykt hq keys rotate --revoke' it")
    return _next_set(db, root, [(k.key, k.not_after) for k in current.keys if k.kid not in gone])


def config_lines(db: HqDb) -> str:
    """What each terminal's ``[sync]`` needs to trust this HQ."""
    signer = db.signer()
    lines = f'hq_keys = {{ "{signer.kid}" = "{public_key_b64(signer.public_key)}" }}\n'
    root = db.meta("root_pub")
    if root is not None:
        lines += f'hq_root_key = "{root}"\n'
    return "[sync]\n" + lines


# -- the commands -------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    db = HqDb(args.dir)
    keyset = current_keyset(db)
    if keyset is None:
        console.print("no keyset: terminals trust the hq_keys of their config only")
    else:
        signing = db.signer().kid
        console.print(f"keyset version {keyset.version}, issued {keyset.issued}")
        for k in keyset.keys:
            mark = " (signing)" if k.kid == signing else ""
            console.print(f"  {k.kid}  valid until {k.not_after:%Y-%m-%d}{mark}")
    console.print("Each terminal's config:")
    console.out(config_lines(db), end="")
    return 0


def _root(args: argparse.Namespace) -> int:
    db = HqDb(args.dir)
    keyset = make_root(db, args.out, args.days, replace=args.replace)
    console.print(f"root key written to {args.out}: move it off this machine (keep two copies)")
    console.print(f"keyset {keyset.version} signed; add hq_root_key to each terminal's config:")
    console.out(config_lines(db), end="")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    db = HqDb(args.dir)
    keyset = rotate(db, args.root_key, revoke=args.revoke, days=args.days)
    console.print(
        f"keyset {keyset.version}: HQ now signs with {db.signer().kid}; "
        "a running 'ykt hq serve' publishes it and switches at once"
    )
    return 0


def _revoke(args: argparse.Namespace) -> int:
    db = HqDb(args.dir)
    keyset = revoke(db, args.root_key, args.kid)
    console.print(f"keyset {keyset.version}: {', '.join(args.kid)} no longer trusted")
    return 0


def _days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 3650:
        raise argparse.ArgumentTypeError("days: a whole number from 1 to 3650")
    return int(text)


def _run(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except Rejected as exc:
            raise SyncError(f"the keyset does not verify: {exc}") from None

    return run


def add_key_commands(sub: Any) -> None:
    keys: argparse.ArgumentParser = sub.add_parser(
        "keys", help="HQ's signing keys: show, root key, rotate, revoke"
    )
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="the keyset terminals trust, and their config lines")
    show.set_defaults(handler=_run(_show))
    root = actions.add_parser("root", help="create the site's root key (or --replace it)")
    root.add_argument("--out", type=Path, required=True, help="where to write it (0600)")
    root.add_argument("--days", type=_days, default=DEFAULT_KEY_DAYS, help="online key validity")
    root.add_argument("--replace", action="store_true", help="replace a compromised root key")
    root.set_defaults(handler=_run(_root))
    rot = actions.add_parser("rotate", help="a new online signing key, signed by the root key")
    rot.add_argument("--root-key", type=Path, required=True, help="the root key file")
    rot.add_argument("--revoke", action="append", default=[], metavar="KID", help="drop a key")
    rot.add_argument("--days", type=_days, default=DEFAULT_KEY_DAYS, help="new key's validity")
    rot.set_defaults(handler=_run(_rotate))
    rev = actions.add_parser("revoke", help="stop trusting online keys (not the signing one)")
    rev.add_argument("--root-key", type=Path, required=True, help="the root key file")
    rev.add_argument("kid", nargs="+")
    rev.set_defaults(handler=_run(_revoke))
