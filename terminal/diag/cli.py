"""``ykt diag``: the field technician's commands, human output or ``--json``, and exit codes.

Each command asks the daemon over the diag socket. When the daemon is not running, the commands
that only read (see :data:`~terminal.diag.commands.OFFLINE`) run here instead, against the
database opened read-only (``--config`` says where; that needs read access to the state
directory, i.e. root). Exit codes: :class:`~terminal.diag.protocol.Exit`.
"""

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console

from models.errors import ConfigError
from terminal import config as config_module
from terminal.config import Config
from terminal.config.diag import DEFAULT_SOCKET, DiagSection
from terminal.diag import bundle as bundle_module
from terminal.diag import qr as qr_diag
from terminal.diag import render, render_faces, watch
from terminal.diag.client import DiagClient, UnreachableError
from terminal.diag.commands import OFFLINE, Commands
from terminal.diag.facts import Database
from terminal.diag.protocol import (
    ERROR_EXIT,
    FACE_MAX_FRAMES,
    DiagError,
    ErrorCode,
    Exit,
    exit_for,
)

DEFAULT_CONFIG = Path("/etc/ykt-terminal/terminal.toml")
Handler = Callable[[argparse.Namespace], int]


class _Backend(Protocol):
    source: str

    def call(self, name: str, args: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]: ...

    def close(self) -> None: ...


class _Daemon:
    source = "daemon"

    def __init__(self, client: DiagClient) -> None:
        self._client = client

    def call(self, name: str, args: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        return self._client.call(name, args, timeout)

    def close(self) -> None:
        self._client.close()


class _Local:
    source = "database"

    def __init__(self, config: Config) -> None:
        diag = getattr(config, "diag", None)
        self._commands = Commands(config, diag=diag if isinstance(diag, DiagSection) else None)

    def call(self, name: str, args: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        return self._commands.run(name, args, os.getuid())

    def close(self) -> None:
        pass


def _load_config(args: argparse.Namespace) -> Config:
    return config_module.load(args.config or DEFAULT_CONFIG)


def _socket_path(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    if args.config is not None:
        try:
            diag = getattr(_load_config(args), "diag", None)
        except ConfigError:
            diag = None
        if isinstance(diag, DiagSection):
            return diag.socket
    return DEFAULT_SOCKET


def _backend(args: argparse.Namespace, command: str) -> _Backend:
    """The daemon if it answers; else, for read-only commands, the database in this process."""
    path = _socket_path(args)
    try:
        return _Daemon(DiagClient(path))
    except UnreachableError as exc:
        if command not in OFFLINE:
            raise
        why = str(exc)
    try:
        backend = _Local(_load_config(args))
    except ConfigError as exc:
        if args.config is None:
            # Most likely a technician without sudo: the daemon being down is the news.
            raise UnreachableError(
                f"{why}\n(to read the database instead, run as root with --config FILE: {exc})"
            ) from None
        raise DiagError(
            ErrorCode.BAD_REQUEST, f"{why}\nand the config to read the database from: {exc}"
        ) from None
    if not args.json:
        _err(f"{why}; reading the database directly")
    return backend


def _json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(message: str) -> None:
    sys.stderr.write(f"ykt diag: {message}\n")


def _console() -> Console:
    return Console(highlight=False)


def _fail(args: argparse.Namespace, code: ErrorCode | str, message: str, exit_code: Exit) -> int:
    if args.json:
        _out(_json({"level": "failed", "error": {"code": str(code), "message": message}}))
    else:
        _err(message)
    return int(exit_code)


def _guarded(args: argparse.Namespace, work: Callable[[], int]) -> int:
    try:
        return work()
    except UnreachableError as exc:
        return _fail(args, "unreachable", str(exc), Exit.UNREACHABLE)
    except DiagError as exc:
        return _fail(args, exc.code, exc.message, ERROR_EXIT.get(exc.code, Exit.FAILED))
    except OSError as exc:
        return _fail(args, "failed", str(exc), Exit.FAILED)


def _print(args: argparse.Namespace, command: str, result: dict[str, Any]) -> int:
    if args.json:
        _out(_json(result, indent=2))
    else:
        render.show(_console(), command, result, render_faces.RENDERERS | qr_diag.RENDERERS)
    return int(exit_for(result))


def _simple(
    command: str,
    request: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
    timeout: Callable[[argparse.Namespace], float] = lambda a: 30.0,
) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        def work() -> int:
            backend = _backend(args, command)
            try:
                result = backend.call(command, request(args) if request else {}, timeout(args))
            finally:
                backend.close()
            result["source"] = backend.source
            return _print(args, command, result)

        return _guarded(args, work)

    return handler


def _qr_request(args: argparse.Namespace) -> dict[str, Any]:
    request: dict[str, Any] = {"timeout": args.timeout}
    if args.amount:
        request["amount"] = args.amount
    if args.text is not None:
        request["text"] = args.text
    elif args.image is not None:
        # Decoded here, where the file is: the daemon is given the text, as a reader gives it.
        request["text"] = qr_diag.text_from_image(args.image)
    return request


QR_HELP = (
    "judge an electronic-card code as if shown now: decision, holder, key, time left, whether "
    "already used (nothing recorded)"
)


def _add_qr(qr: argparse.ArgumentParser) -> None:
    source = qr.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the code's text (YKT1....)")
    source.add_argument("--image", type=Path, help="a photo or screenshot of the code")
    source.add_argument(
        "--camera",
        action="store_true",
        help="wait for the next code shown to this terminal's QR reader (camera or scanner)",
    )
    qr.add_argument("--timeout", type=float, default=30.0, help="--camera: seconds to wait")
    qr.add_argument("--amount", type=int, default=None, help="POS: amount in fen to try")


def _sync(args: argparse.Namespace) -> int:
    command = {"resync": "sync_resync", "upload": "sync_upload"}.get(args.action or "", "sync")
    return _simple(command)(args)


def _watch(args: argparse.Namespace) -> int:
    def work() -> int:
        backend = _backend(args, "watch")

        def fetch() -> dict[str, Any]:
            return backend.call("watch", {})

        try:
            if args.json:
                result = watch.run_json(
                    lambda r: _out(_json(r)), fetch, count=args.count, interval=args.interval
                )
            else:
                result = watch.run(_console(), fetch, count=args.count, interval=args.interval)
        finally:
            backend.close()
        return int(exit_for(result)) if result else int(Exit.OK)

    return _guarded(args, work)


def _bundle(args: argparse.Namespace) -> int:
    def work() -> int:
        backend = _backend(args, "bundle")
        try:
            parts = backend.call("bundle", {"events": args.events}, timeout=300)
        finally:
            backend.close()
        status = parts.get("status") or {}
        out = args.out or bundle_module.default_name(str(status.get("terminal_id", "terminal")))
        lookup = None
        db_path = (parts.get("config") or {}).get("database_path")
        if args.log is not None and db_path:
            lookup = _name_lookup(Path(db_path))
        summary = bundle_module.write_bundle(
            out,
            parts,
            source=backend.source,
            log=args.log,
            log_lines=args.log_lines,
            lookup=lookup,
        )
        if args.json:
            _out(_json(summary, indent=2))
        else:
            console = _console()
            console.print(render.headline(summary["level"], f"bundle written: {summary['path']}"))
            console.print(
                render.pairs(
                    [
                        ("size", render.size(summary["bytes"])),
                        ("contains", ", ".join(summary["members"])),
                        ("from", summary["source"]),
                        ("log", summary["log"]),
                    ]
                )
            )
        # The bundle was made; its exit code still says how the terminal is doing.
        return int(exit_for(summary))

    return _guarded(args, work)


def _name_lookup(path: Path) -> bundle_module.NameLookup | None:
    """Holder-name lookup for log redaction, if this user can read the database."""
    if not os.access(path, os.R_OK):
        return None

    def lookup(candidates: set[str]) -> set[str]:
        with Database(path) as db:
            return db.known_names(candidates)

    try:
        lookup(set())
    except DiagError:
        return None
    return lookup


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    common.add_argument(
        "--socket",
        type=Path,
        default=None,
        help="the daemon's diag socket (default: the [diag] socket of --config, else "
        f"{DEFAULT_SOCKET})",
    )
    common.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"terminal config, to read the database when the daemon is down (default "
        f"{DEFAULT_CONFIG})",
    )
    return common


def add_diag_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``diag`` and its commands to ``ykt``'s sub-commands; each sets ``handler``."""
    common = _common()
    diag = subparsers.add_parser(
        "diag",
        help="diagnose this terminal (status, card dry run, gate test, bundle, ...)",
        description="Field diagnostics. Exit codes: 0 healthy/done, 1 failed, 2 usage, "
        "3 degraded, 4 daemon not running, 5 access denied, 6 not available here, 7 timed out.",
    )
    commands = diag.add_subparsers(dest="diag_command", required=True, metavar="COMMAND")

    def add(
        name: str, help_: str, handler: Handler, parent: Any = commands
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(name, help=help_, parents=[common])
        parser.set_defaults(handler=handler)
        return parser

    add(
        "status",
        "health at a glance: daemon, devices, database, sync, clock, disk",
        _simple("status"),
    )
    add("readers", "PC/SC readers the system sees, and the reader's health", _simple("readers"))
    card = add(
        "card",
        "tap a card (or give its number): the decision it would get and why (nothing recorded)",
        _simple(
            "card",
            lambda a: (
                {"timeout": a.timeout}
                | ({"amount": a.amount} if a.amount else {})
                | ({"number": a.number} if a.number else {})
            ),
            lambda a: a.timeout + 10,
        ),
    )
    card.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the tap")
    card.add_argument("--amount", type=int, default=None, help="POS: amount in fen to try")
    card.add_argument(
        "--number",
        default=None,
        help="judge the card with this number without a tap (no chip is read or authenticated)",
    )
    _add_qr(add("qr", QR_HELP, _simple("qr", _qr_request, lambda a: a.timeout + 10)))
    gate = commands.add_parser("gate", help="the turnstile or door gate")
    gate_commands = gate.add_subparsers(dest="gate_command", required=True, metavar="SUBCOMMAND")
    test = add(
        "test",
        "release the gate once and read its sensors (journalled as maintenance_open)",
        _simple("gate_test", lambda a: {"seconds": a.seconds}, lambda a: a.seconds * 2 + 40),
        gate_commands,
    )
    test.add_argument("--seconds", type=float, default=3.0, help="how long to release (0.5-5)")
    add(
        "camera",
        "the camera's health and its newest frame: size, age, brightness",
        _simple("camera"),
    )
    face = add(
        "face",
        "the face pipeline on the newest frame: quality, why refused, best score",
        _simple(
            "face",
            lambda a: {"frames": a.frames} | ({"show_holder": True} if a.show_holder else {}),
        ),
    )
    face.add_argument(
        "--frames", type=int, default=1, help=f"analyse N new frames (1-{FACE_MAX_FRAMES})"
    )
    face.add_argument(
        "--show-holder",
        action="store_true",
        help="also show the holder id of the best match (logged by the daemon)",
    )
    tx = add(
        "tx",
        "the newest journal records, optionally filtered (card numbers masked)",
        _simple(
            "tx",
            lambda a: {
                k: v
                for k, v in {
                    "limit": a.limit,
                    "card": a.card,
                    "reason": a.reason,
                    "kind": a.kind,
                    "decision": a.decision,
                }.items()
                if v is not None
            },
        ),
    )
    tx.add_argument("--limit", type=int, default=20)
    tx.add_argument("--card", help="the whole card number, or its last four digits")
    tx.add_argument("--reason", help="a reason code, e.g. outside_schedule")
    tx.add_argument("--kind", help="door, passage, meal, shop, barber, correction")
    tx.add_argument("--decision", choices=("allow", "deny"))
    events = add(
        "events",
        "security events (lost card used, door forced, maintenance_open, ...)",
        _simple("events", lambda a: {"limit": a.limit} | ({"type": a.type} if a.type else {})),
    )
    events.add_argument("--limit", type=int, default=20)
    events.add_argument("--type", help="only this event type")
    sync = add("sync", "HQ link state; 'resync' or 'upload' to force them", _sync)
    sync.add_argument("action", nargs="?", choices=("resync", "upload"))
    db = commands.add_parser("db", help="the database")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="SUBCOMMAND")
    add(
        "check",
        "integrity, migrations, counts, journal hash chain",
        _simple("db_check", timeout=lambda a: 3600.0),
        db_commands,
    )
    add("config", "the effective config, secrets redacted", _simple("config"))
    add("identity", "terminal id and public key for HQ enrolment", _simple("identity"))
    dashboard = add("watch", "a live dashboard; Ctrl-C ends", _watch)
    dashboard.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    dashboard.add_argument("--count", type=int, default=0, help="stop after N refreshes (0: never)")
    bundle = add("bundle", "a tar.gz for the support desk, without personal data", _bundle)
    bundle.add_argument("--out", type=Path, default=None, help="file to write (must not exist)")
    bundle.add_argument("--log", type=Path, default=None, help="a log file to include the tail of")
    bundle.add_argument("--log-lines", type=int, default=2000)
    bundle.add_argument("--events", type=int, default=200, help="how many recent events")


def main(argv: list[str] | None = None) -> int:
    """``python -m terminal.diag ...``: the same commands without the rest of ``ykt``."""
    parser = argparse.ArgumentParser(prog="ykt")
    add_diag_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["diag", *(sys.argv[1:] if argv is None else argv)])
    result: int = args.handler(args)
    return result
