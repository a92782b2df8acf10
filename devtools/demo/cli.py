"""The ``ykt demo`` command, added to ``ykt`` through the ``ykt.commands`` entry point."""

import argparse
from pathlib import Path
from typing import Any


def _demo(args: argparse.Namespace) -> int:
    # Imported when run: the demo loads the daemon's whole wiring, which `ykt --help` should not.
    from devtools.demo.door import main  # noqa: PLC0415

    return main(interactive=args.interactive, state_dir=args.state_dir, pace=args.pace)


def add_demo_command(commands: Any) -> None:
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
