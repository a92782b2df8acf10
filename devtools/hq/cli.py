"""``ykt hq ...``: the reference HQ's commands (``add_hq_commands`` hooks them into ``ykt``).

Every command works on one site directory (``--dir``, default ``$YKT_HQ_DIR`` or ``./hq``).
Card-office commands only write the database; ``serve`` publishes what they wrote, so they can
run while ``serve`` is running (SQLite WAL lets both at once).
"""

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console
from rich.table import Table

from devtools.hq.db import HqDb
from devtools.hq.importcmd import add_import_command
from devtools.hq.keyadmin import ROOT_KEY_NAME, add_key_commands, config_lines, make_root
from devtools.hq.office import Office
from devtools.hq.qr import add_qr_commands
from devtools.hq.server import HqServer, ServeOptions
from models.errors import TerminalError
from models.timefmt import rfc3339
from sync.engine import ENGINE_COMMANDS, TERMINAL_COMMANDS
from sync.envelope import Rejected, open_envelope, public_key_from_b64
from sync.settings import TlsFiles
from sync.topics import Topics

console = Console()

# card action -> the status it sets
CARD_ACTIONS = {
    "lost": "lost",
    "unlost": "active",
    "cancel": "cancelled",
    "freeze": "frozen",
    "unfreeze": "active",
    "expire": "expired",
    "spend-only": "spend_only",
}
COMMAND_NAMES = ENGINE_COMMANDS | TERMINAL_COMMANDS


def _broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("broker is HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def _open(args: argparse.Namespace) -> HqDb:
    return HqDb(args.dir, id_key=args.id_key)


def _json_arg(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a JSON object is required")
    return value


def _init(args: argparse.Namespace) -> int:
    db = HqDb.create(args.dir, args.site, args.prefix, args.broker, id_key=args.id_key)
    root_path = args.root_key or args.dir / ROOT_KEY_NAME
    make_root(db, root_path)
    console.print(f"HQ for site [bold]{args.site}[/] in {args.dir}")
    console.print(
        f"ID numbers are hashed with the key in {db.id_key_path}: back it up with the root key; "
        "without it a re-imported sheet no longer matches its holders."
    )
    console.print(
        f"The root key is {root_path}: move it off this machine (keep two copies); "
        "'ykt hq keys rotate --root-key FILE' needs it to change HQ's keys."
    )
    console.print("Add this to each terminal's config:")
    sys.stdout.write(config_lines(db))
    db.close()
    return 0


def _enroll(args: argparse.Namespace) -> int:
    kid = Office(_open(args)).enroll(args.tid, args.public_key)
    console.print(f"terminal {args.tid} enrolled with key {kid}")
    return 0


def _alarms(args: argparse.Namespace) -> int:
    """What HQ noticed about terminals that an operator must look at; exit 1 when any."""
    db = _open(args)
    rows = db.conn.execute(
        "SELECT at, tid, kind, detail FROM alarms WHERE (? IS NULL OR tid = ?) ORDER BY id",
        (args.tid, args.tid),
    ).fetchall()
    if args.json:
        console.print_json(
            data=[{"at": a, "tid": t, "kind": k, "detail": json.loads(d)} for a, t, k, d in rows]
        )
    else:
        for at, tid, kind, detail in rows:
            console.print(f"{at}  {tid}  [bold red]{kind}[/]  {detail}")
        if not rows:
            console.print("no alarms")
    return 1 if rows else 0


def _holder(args: argparse.Namespace) -> int:
    seq = Office(_open(args)).upsert_holder(args.json)
    console.print(f"holder {args.json['id']} at change {seq}")
    return 0


def _card(args: argparse.Namespace) -> int:
    office = Office(_open(args))
    action = args.card_action
    if action == "issue":
        if not args.holder:
            raise SystemExit("card issue needs --holder")
        seq = office.issue_card(args.holder, args.number, uid=args.uid, card_class=args.card_class)
    elif action == "replace":
        if not args.new:
            raise SystemExit("card replace needs --new")
        seq = office.replace_card(args.number, args.new, uid=args.uid)
    else:
        seq = office.set_status(args.number, CARD_ACTIONS[action])
    console.print(f"card {action}: change {seq}")
    return 0


def _topup(args: argparse.Namespace) -> int:
    seq = Office(_open(args)).move_money(args.account, args.purse, args.amount, "topup")
    console.print(f"top-up of {args.amount} fen: change {seq}")
    return 0


def _subsidy(args: argparse.Namespace) -> int:
    office = Office(_open(args))
    if args.subsidy_action == "grant":
        if args.amount is None or args.amount <= 0:
            raise SystemExit("subsidy grant needs a positive AMOUNT in fen")
        seq = office.move_money(args.account, args.purse, args.amount, "subsidy_grant")
    else:
        seq = office.expire_subsidy(args.account, args.purse)
    console.print(f"subsidy {args.subsidy_action}: change {seq}")
    return 0


def _group(args: argparse.Namespace) -> int:
    console.print(f"group: change {Office(_open(args)).upsert_group(args.json)}")
    return 0


def _rule(args: argparse.Namespace) -> int:
    console.print(f"rule: change {Office(_open(args)).upsert_rule(args.json)}")
    return 0


def _holiday(args: argparse.Namespace) -> int:
    seq = Office(_open(args)).set_holidays(args.calendar, args.holiday, args.workday)
    console.print(f"calendar {args.calendar}: change {seq}")
    return 0


def _tls(args: argparse.Namespace) -> TlsFiles | None:
    if not args.tls_ca:
        return None
    return TlsFiles(args.tls_ca, args.tls_cert, args.tls_key)


def _broker_of(args: argparse.Namespace, db: HqDb) -> tuple[str, int]:
    if args.broker:
        host, port = args.broker
        return str(host), int(port)
    return _broker(db.meta("broker") or "127.0.0.1:1883")


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    db = _open(args)
    host, port = _broker_of(args, db)
    server = HqServer(
        db,
        ServeOptions(
            host=host,
            port=port,
            tls=_tls(args),
            mqtt_version=args.mqtt,
            head_ttl=args.head_ttl,
            share_group=args.share_group,
        ),
    )

    def request_stop(signum: int, frame: FrameType | None) -> None:
        server.request_stop()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    console.print(f"serving site {db.site} on {host}:{port} (change seq {db.head_seq()})")
    server.link.start()
    try:
        server.run()
    finally:
        server.link.stop()
        db.close()
    return 0


def _certificate_cn(path: Path) -> str | None:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None  # TLS itself says what is wrong with the file
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def _oneshot(args: argparse.Namespace, db: HqDb, name: str) -> mqtt.Client:
    host, port = _broker_of(args, db)
    tls = _tls(args)
    if tls is not None and tls.cert is not None and _certificate_cn(tls.cert) == f"hq-{db.site}":
        # The broker binds the client id to the certificate: this one-shot would be handed
        # serve's session (its queued records) and disconnect the running serve.
        raise TerminalError(
            f"{tls.cert} is the certificate of `ykt hq serve` (CN hq-{db.site}); one-shot commands "
            f"need their own, CN hq-{db.site}-cli (docs/broker.md)"
        )
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"hq-{name}-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )
    if tls is not None:
        client.tls_set(
            str(tls.ca), str(tls.cert) if tls.cert else None, str(tls.key) if tls.key else None
        )
    client.connect(host, port, 30)
    return client


def _terminal_key(db: HqDb, tid: str) -> Any:
    row = db.conn.execute("SELECT kid, pub FROM terminals WHERE tid = ?", (tid,)).fetchone()
    return {} if row is None else {str(row[0]): public_key_from_b64(str(row[1]))}


def _collect(client: mqtt.Client, seconds: float) -> Iterator[mqtt.MQTTMessage]:
    """Messages as they arrive, for at most ``seconds`` (the caller may stop earlier)."""
    seen: list[mqtt.MQTTMessage] = []
    client.on_message = lambda c, u, m: seen.append(m)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        client.loop(timeout=0.1)
        while seen:
            yield seen.pop(0)


def _status(args: argparse.Namespace) -> int:
    db = _open(args)
    topics = Topics(db.prefix, db.site)
    client = _oneshot(args, db, "status")
    client.subscribe(f"{topics.prefix}/{db.site}/+/status", qos=1)
    table = Table(title=f"site {db.site}: terminals (HQ change seq {db.head_seq()})")
    for column in ("terminal", "online", "change seq", "backlog", "degraded", "version", "note"):
        table.add_column(column)
    rows: dict[str, list[str]] = {}
    for message in _collect(client, args.wait):
        where = topics.split(message.topic)
        if where is None or where[0] is None:
            continue
        tid = where[0]
        try:
            body = open_envelope(
                bytes(message.payload),
                _terminal_key(db, tid),
                site=db.site,
                tid=tid,
                require_tid=True,
            ).body
        except Rejected as exc:
            rows[tid] = [tid, "?", "", "", "", "", f"[red]{exc.reason}[/]"]
            continue
        rows[tid] = [
            tid,
            "yes" if body.get("online") else "[red]no[/]",
            str(body.get("change_seq", "")),
            str(body.get("outbox_backlog", "")),
            "[yellow]yes[/]" if body.get("degraded") else "no",
            str(body.get("version", "")),
            "",
        ]
    client.disconnect()
    for tid in sorted(rows):
        table.add_row(*rows[tid])
    console.print(table)
    return 0


def _cmd(args: argparse.Namespace) -> int:
    db = _open(args)
    topics = Topics(db.prefix, db.site)
    signer = db.signer()
    expires = datetime.now(UTC) + timedelta(seconds=args.ttl)
    cmd_args = dict(item.split("=", 1) for item in args.arg)
    body = {"name": args.name, "args": cmd_args, "expires": rfc3339(expires)}
    payload = signer.seal("cmd", db.site, body, tid=args.tid)
    cmd_id = json.loads(payload)["id"]
    client = _oneshot(args, db, "cmd")
    client.subscribe(topics.terminal_topic("reply", args.tid), qos=1)
    client.loop(timeout=0.2)
    client.publish(topics.terminal_topic("cmd", args.tid), payload, qos=1)
    for message in _collect(client, args.wait):
        try:
            reply = open_envelope(
                bytes(message.payload),
                _terminal_key(db, args.tid),
                site=db.site,
                tid=args.tid,
                require_tid=True,
            ).body
        except Rejected:
            continue
        if reply.get("cmd") == cmd_id:
            console.print_json(data=dict(reply))
            client.disconnect()
            return 0 if reply.get("ok") else 1
    client.disconnect()
    console.print(f"sent {args.name} ({cmd_id}); no reply within {args.wait} s")
    return 1


Sub = Any  # argparse's subparsers action has no public type


def _command(sub: Sub, name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.set_defaults(handler=handler)
    return parser


def _broker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", type=_broker, help="HOST:PORT (default: from init)")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate: use TLS")
    parser.add_argument("--tls-cert", type=Path, help="HQ client certificate")
    parser.add_argument("--tls-key", type=Path, help="HQ client key")


def _office_commands(sub: Sub) -> None:
    init = _command(sub, "init", _init, "create a site: database and signing key")
    init.add_argument("--site", required=True)
    init.add_argument("--prefix", default="ykt/v1")
    init.add_argument("--broker", default="127.0.0.1:1883")
    init.add_argument(
        "--root-key", type=Path, help=f"where to write the root key (default DIR/{ROOT_KEY_NAME})"
    )

    enroll = _command(sub, "enroll", _enroll, "register a terminal's public key")
    enroll.add_argument("tid")
    enroll.add_argument("public_key", help="base64, as the terminal's diag CLI shows it")

    add_import_command(sub)

    holder = _command(sub, "holder", _holder, "add or change a holder (holder.upsert JSON)")
    holder.add_argument("json", type=_json_arg)

    card = _command(sub, "card", _card, "card office: issue, lost, unlost, replace, cancel, ...")
    card.add_argument("card_action", choices=[*CARD_ACTIONS, "issue", "replace"])
    card.add_argument("number", help="20-digit card number")
    card.add_argument("--holder", help="holder id (issue)")
    card.add_argument("--new", help="the new card's number (replace)")
    card.add_argument("--uid", help="chip UID (hex)")
    card.add_argument("--class", dest="card_class", help="card class (default: the holder's)")


def _money_commands(sub: Sub) -> None:
    topup = _command(sub, "topup", _topup, "充值: add fen to a purse")
    topup.add_argument("account")
    topup.add_argument("amount", type=int, help="fen")
    topup.add_argument("--purse", default="cash")

    subsidy = _command(sub, "subsidy", _subsidy, "grant or expire a subsidy purse")
    subsidy.add_argument("subsidy_action", choices=["grant", "expire"])
    subsidy.add_argument("account")
    subsidy.add_argument("amount", type=int, nargs="?", help="fen (grant)")
    subsidy.add_argument("--purse", default="meal_subsidy")

    group = _command(sub, "group", _group, "add or change an access group from JSON")
    group.add_argument("json", type=_json_arg)
    rule = _command(sub, "rule", _rule, "add or change a rule from JSON (docs/protocol.md)")
    rule.add_argument("json", type=_json_arg)
    holiday = _command(sub, "holiday", _holiday, "set a calendar's holidays and make-up workdays")
    holiday.add_argument("calendar")
    holiday.add_argument("--holiday", action="append", default=[], help="YYYY-MM-DD")
    holiday.add_argument("--workday", action="append", default=[], help="YYYY-MM-DD (调休)")


def _link_commands(sub: Sub) -> None:
    serve = _command(sub, "serve", _serve, "run the HQ side of the protocol until stopped")
    _broker_options(serve)
    serve.add_argument("--mqtt", choices=["5", "3.1.1"], default="5")
    serve.add_argument("--head-ttl", type=int, default=300, help="seconds a head stays valid")
    serve.add_argument("--share-group", help="consume through $share/<group>/... (scale out)")

    alarms = _command(
        sub, "alarms", _alarms, "journal resets, seqs gone backwards, records resent changed"
    )
    alarms.add_argument("--tid", help="only this terminal")
    alarms.add_argument("--json", action="store_true")

    status = _command(sub, "status", _status, "fleet table from the terminals' retained statuses")
    _broker_options(status)
    status.add_argument("--wait", type=float, default=1.5, help="seconds to collect")

    cmd = _command(sub, "cmd", _cmd, "send a signed command to one terminal and show its reply")
    _broker_options(cmd)
    cmd.add_argument("tid")
    cmd.add_argument("name", choices=sorted(COMMAND_NAMES))
    cmd.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE")
    cmd.add_argument("--ttl", type=int, default=60, help="seconds until the command expires")
    cmd.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the reply")


def add_hq_commands(subparsers: Sub) -> argparse.ArgumentParser:
    """Add ``hq`` and its subcommands to ``ykt``'s subparsers (the ``ykt.commands`` entry point
    this package declares); handlers set ``handler``."""
    hq: argparse.ArgumentParser = subparsers.add_parser(
        "hq", help="reference HQ: card office, ledger, and the MQTT side"
    )
    hq.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("YKT_HQ_DIR", "hq")),
        help="site directory (database and signing key); default $YKT_HQ_DIR or ./hq",
    )
    hq.add_argument(
        "--id-key",
        type=Path,
        help="the key ID numbers are hashed with; default $YKT_HQ_ID_KEY or DIR-id.key beside DIR",
    )
    sub = hq.add_subparsers(dest="hq_command", required=True, metavar="SUBCOMMAND")
    _office_commands(sub)
    _money_commands(sub)
    _link_commands(sub)
    add_key_commands(sub)
    add_qr_commands(sub)
    return hq


def main(argv: list[str] | None = None) -> int:
    """``python -m devtools.hq ...``: the same commands without the terminal's CLI around them."""
    parser = argparse.ArgumentParser(prog="ykt")
    add_hq_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["hq", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.handler(args))
    except TerminalError as exc:
        sys.stderr.write(f"ykt hq: {exc}\n")
        return 1
