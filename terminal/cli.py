"""``ykt``: the one command of the terminal.

Exit codes: 0 success; 1 the daemon or demo failed at run time; 2 bad usage or an invalid config.
"""

import argparse
import contextlib
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from drivers.secrets import CredentialSource, credentials_from, unit_credentials
from models.errors import ConfigError, TerminalError
from terminal import __version__, config, daemon, preflight
from terminal.config import doc as configdoc
from terminal.diag.cli import add_diag_commands
from terminal.faces.cli import add_faces_commands

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Commands another installed package adds to ``ykt``: each entry point is a function taking the
# subparsers. The development tools (devtools/: the demo and the reference HQ) come this way, so
# the appliance neither ships nor imports them.
PLUGIN_GROUP = "ykt.commands"
DEVTOOLS_COMMANDS = {
    "demo": "run a narrated demo on simulated hardware",
    "hq": "reference HQ: card office, ledger, and the MQTT side",
}


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ykt", description="一卡通 edge terminal: door and POS authorization, offline first."
    )
    parser.add_argument("--version", action="version", version=f"ykt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the terminal daemon")
    run.add_argument("--config", type=Path, required=True, help="TOML config file")
    run.set_defaults(handler=_run)

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
    _add_plugin_commands(commands)
    return parser


def _add_plugin_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    for plugin in sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name):
        plugin.load()(commands)
    for name, help_text in DEVTOOLS_COMMANDS.items():
        if name not in commands.choices:
            missing = commands.add_parser(name, help=f"{help_text} (development tools)")
            missing.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
            missing.set_defaults(handler=_devtools_missing)


def _devtools_missing(args: argparse.Namespace) -> int:
    print(
        f"ykt {args.command}: a development tool, not installed with the terminal; from a "
        "checkout of the repository, ./dev setup installs it (pip install ./devtools)",
        file=sys.stderr,
    )
    return EXIT_USAGE


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
