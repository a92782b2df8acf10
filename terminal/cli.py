"""``ykt``: the one command of the terminal.

Exit codes: 0 success; 1 the daemon or demo failed at run time; 2 bad usage or an invalid config.
"""

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from drivers.secrets import CredentialSource, credentials_from, unit_credentials
from models.errors import ConfigError, TerminalError
from sync.hq.cli import add_hq_commands
from terminal import __version__, config, daemon, demo, preflight
from terminal.config import doc as configdoc
from terminal.diag.cli import add_diag_commands
from terminal.faces.cli import add_faces_commands
from terminal.faces.hq_templates import photo_encoder

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _config_check(args: argparse.Namespace) -> int:
    """What the daemon checks at start, and nothing it would let pass: the config, then the
    secret files it names (outside systemd, credentials from --credentials-dir or --unit)."""
    source: CredentialSource | None = args.credentials_dir
    if args.unit is not None:
        try:
            source = unit_credentials(args.unit)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return EXIT_USAGE
    with credentials_from(source) if source is not None else contextlib.nullcontext():
        try:
            loaded = config.load(args.file)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return EXIT_USAGE
        found = preflight.problems(loaded)
    for problem in found:
        print(f"{args.file}: {problem}", file=sys.stderr)
    if found:
        return EXIT_USAGE
    for warning in loaded.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print("ok")
    return EXIT_OK


def _config_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(configdoc.json_schema())
    return EXIT_OK


def _config_reference(args: argparse.Namespace) -> int:
    sys.stdout.write(configdoc.reference())
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    try:
        loaded = config.load(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    return daemon.run(loaded, args.config)


def _demo(args: argparse.Namespace) -> int:
    return demo.main(interactive=args.interactive, state_dir=args.state_dir, pace=args.pace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ykt", description="一卡通 edge terminal: door and POS authorization, offline first."
    )
    parser.add_argument("--version", action="version", version=f"ykt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the terminal daemon")
    run.add_argument("--config", type=Path, required=True, help="TOML config file")
    run.set_defaults(handler=_run)

    demo = commands.add_parser("demo", help="run a narrated demo on simulated hardware")
    demo.add_argument(
        "--interactive",
        action="store_true",
        help="after seeding the demo site, read reader commands (e.g. 'tap NUMBER') from stdin",
    )
    demo.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="keep the demo database here instead of a temporary directory",
    )
    demo.add_argument(
        "--pace",
        type=float,
        default=0.4,
        metavar="SECONDS",
        help="pause between narrated taps (default 0.4)",
    )
    demo.set_defaults(handler=_demo)

    cfg = commands.add_parser("config", help="check configuration, print its schema or reference")
    cfg_commands = cfg.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    check = cfg_commands.add_parser("check", help="validate a config file: 'ok' or each error")
    check.add_argument("file", type=Path)
    where = check.add_mutually_exclusive_group()
    where.add_argument(
        "--credentials-dir",
        type=Path,
        help="outside systemd: a directory holding the credentials by name",
    )
    where.add_argument(
        "--unit",
        type=Path,
        help="outside systemd: take credentials from this unit's LoadCredential= lines",
    )
    check.set_defaults(handler=_config_check)
    schema = cfg_commands.add_parser("schema", help="print the JSON schema of the config")
    schema.set_defaults(handler=_config_schema)
    reference = cfg_commands.add_parser("reference", help="print the Markdown config reference")
    reference.set_defaults(handler=_config_reference)
    add_diag_commands(commands)
    add_faces_commands(commands)
    add_hq_commands(commands, face_encoders=photo_encoder)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except TerminalError as exc:
        print(f"ykt: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    return result
