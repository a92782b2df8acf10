"""Run an emulated card or PSAM in a vpcd reader slot.

    python -m devtools.cardemu card --port 35963 --config card.toml [overrides...]
    python -m devtools.cardemu sam --port 35964 --config keys.toml

Options given on the command line override the config file (TOML, same names with underscores;
hex strings for bytes, ``YYYY-MM-DD`` for dates). Keys are never logged.
"""

import argparse
import logging
import os
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from devtools.cardemu.card import MALFORMATIONS, CardContent, CardFaults, EmulatedCard
from devtools.cardemu.sam import EmulatedSam
from devtools.cardemu.vpcd import VPCD_HOST, VPCD_PORT, LinkEnd, VirtualCard, connect, serve
from drivers.keystore import DEFAULT_SAM_AID, diversify, parse_master_keys
from models.errors import ConfigError

logger = logging.getLogger("devtools.cardemu")

_CARD_KEYS = {
    "number", "issuer_id", "master_key", "card_key", "key_id", "class_code", "issue_seq",
    "valid_from", "valid_until", "application_version", "uid", "aid", "holder_file", "cloned",
    "tear_after", "retap_after", "slow", "chain", "malformed", "uid_only",
}  # fmt: skip
_SAM_KEYS = {"aid", "master_keys", "chain", "slow"}


class UsageError(ValueError):
    """A config file or option the emulator cannot use; the message names it."""


def _load_config(path: Path | None, allowed: set[str]) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    unknown = set(document) - allowed
    if unknown:
        raise UsageError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    return document


def _hex(options: dict[str, Any], name: str, length: int | None = None) -> bytes | None:
    value = options.get(name)
    if value is None:
        return None
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raise UsageError(f"{name}: not hex") from None
    if length is not None and len(raw) != length:
        raise UsageError(f"{name}: must be {length} bytes")
    return raw


def _date(options: dict[str, Any], name: str, default: date) -> date:
    value = options.get(name, default)
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise UsageError(f"{name}: not a YYYY-MM-DD date") from None


def build_card(options: dict[str, Any]) -> tuple[EmulatedCard, float | None]:
    """The card and its re-tap delay from merged file + command line options."""
    uid_only = bool(options.get("uid_only", False))
    number = str(options.get("number", "0" * 20 if uid_only else ""))
    issuer_id = _hex(options, "issuer_id", 8) or (bytes(8) if uid_only else None)
    if not number or issuer_id is None:
        raise UsageError("a CPU card needs number and issuer_id")
    key_id = int(options.get("key_id", 1))
    master_key = _hex(options, "master_key", 16)
    card_key = _hex(options, "card_key", 16)
    if card_key is None and master_key is not None and number.isdigit() and len(number) == 20:
        card_key = diversify(master_key, bytes.fromhex(number), issuer_id)
    if options.get("cloned") or (card_key is None and uid_only):
        # A clone copies everything readable; the key it cannot read is a guess.
        card_key = os.urandom(16)
    if card_key is None:
        raise UsageError("a CPU card needs master_key (diversified here) or card_key")
    try:
        content = CardContent(
            number=number,
            issuer_id=issuer_id,
            card_key=card_key,
            valid_from=_date(options, "valid_from", date(2024, 1, 1)),
            valid_until=_date(options, "valid_until", date(2034, 12, 31)),
            class_code=int(options.get("class_code", 3)),
            issue_seq=int(options.get("issue_seq", 1)),
            key_id=key_id,
            application_version=int(options.get("application_version", 1)),
            uid=_hex(options, "uid") or bytes.fromhex("04A1B2C3D4E5F6"),
            aid=_hex(options, "aid") or bytes.fromhex("F0594B5401"),
            holder_file=_hex(options, "holder_file") or b"",
        )
        tear_after = options.get("tear_after")
        faults = CardFaults(
            tear_after=None if tear_after is None else int(tear_after),
            slow=float(options.get("slow", 0.0)),
            chain=bool(options.get("chain", False)),
            malformed=options.get("malformed"),
            uid_only=uid_only,
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    retap = options.get("retap_after")
    return EmulatedCard(content, faults), None if retap is None else float(retap)


def build_sam(options: dict[str, Any]) -> EmulatedSam:
    keys = options.get("master_keys")
    if keys is None:
        raise UsageError("the SAM needs [master_keys] in --config or --key KID=HEX")
    try:
        master_keys = parse_master_keys(keys, "sam")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    aid_option = options.get("aid", DEFAULT_SAM_AID.hex())
    aid = None if aid_option in ("", "none", False) else _hex({"aid": aid_option}, "aid")
    return EmulatedSam(
        master_keys,
        aid=aid,
        chain=bool(options.get("chain", False)),
        slow=float(options.get("slow", 0.0)),
    )


def run(
    card: VirtualCard,
    host: str,
    port: int,
    *,
    connect_timeout: float,
    reconnect: bool,
    retap_after: float | None = None,
    on_retap: Callable[[], None] | None = None,
) -> int:
    """Keep ``card`` in the vpcd slot until it tears (and maybe returns) or vpcd goes away."""
    while True:
        sock = connect(host, port, connect_timeout)
        if sock is None:
            logger.error(
                "could not reach vpcd at %s:%d within %.1f s: is pcscd running with "
                "vsmartcard-vpcd installed?",
                host,
                port,
                connect_timeout,
            )
            return 2
        logger.info("card in the field of vpcd %s:%d", host, port)
        end = serve(sock, card)
        if end is LinkEnd.TORN:
            logger.info("card left the field mid-exchange")
            if retap_after is None:
                return 0
            time.sleep(retap_after)
            if on_retap is not None:
                on_retap()
            continue
        if end is LinkEnd.CLOSED and reconnect:
            logger.info("vpcd closed the link; waiting for it to come back")
            continue
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.cardemu", description=__doc__)
    sub = parser.add_subparsers(dest="kind", required=True)
    card = sub.add_parser("card", help="a 一卡通 CPU card (or a UID-only card)")
    sam = sub.add_parser("sam", help="a PSAM holding master keys")
    for p, port in ((card, VPCD_PORT), (sam, VPCD_PORT + 1)):
        p.add_argument("--host", default=VPCD_HOST)
        p.add_argument("--port", type=int, default=port, help=f"vpcd slot port ({port})")
        p.add_argument("--config", type=Path, help="TOML file with the options below")
        p.add_argument("--connect-timeout", type=float, default=30.0)
        p.add_argument(
            "--once", action="store_true", help="exit when vpcd closes the link (pcscd stops)"
        )
        p.add_argument("--slow", type=float, help="seconds to wait before every answer")
        p.add_argument("--chain", action="store_true", default=None, help="answer with 61xx")
        p.add_argument("--aid", help="application AID, hex")
        p.add_argument("-q", "--quiet", action="store_true")
    card.add_argument("--number", help="20-digit card number")
    card.add_argument("--issuer-id", help="8-byte issuer id, hex")
    card.add_argument("--master-key", help="master key, hex; the card key is diversified")
    card.add_argument("--card-key", help="the card's own AES key, hex")
    card.add_argument("--key-id", type=int)
    card.add_argument("--class-code", type=int)
    card.add_argument("--issue-seq", type=int)
    card.add_argument("--valid-from")
    card.add_argument("--valid-until")
    card.add_argument("--uid", help="UID, hex")
    card.add_argument("--cloned", action="store_true", default=None, help="right data, wrong key")
    card.add_argument("--tear-after", type=int, help="leave the field after N APDUs")
    card.add_argument("--retap-after", type=float, help="come back N seconds after tearing")
    card.add_argument("--malformed", choices=MALFORMATIONS)
    card.add_argument("--uid-only", action="store_true", default=None, help="no CPU application")
    sam.add_argument("--key", action="append", metavar="KID=HEX", help="a master key")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s cardemu[%(process)d] %(message)s",
    )
    try:
        allowed = _CARD_KEYS if args.kind == "card" else _SAM_KEYS
        options = _load_config(args.config, allowed)
        for name, value in vars(args).items():
            if name in allowed and value is not None:
                options[name] = value
        if args.kind == "sam" and args.key:
            options["master_keys"] = dict(k.split("=", 1) for k in args.key if "=" in k)
        if args.kind == "card":
            emulated, retap_after = build_card(options)
            return run(
                emulated,
                args.host,
                args.port,
                connect_timeout=args.connect_timeout,
                reconnect=not args.once,
                retap_after=retap_after,
                on_retap=emulated.new_presentation,
            )
        return run(
            build_sam(options),
            args.host,
            args.port,
            connect_timeout=args.connect_timeout,
            reconnect=not args.once,
        )
    except UsageError as exc:
        logger.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
