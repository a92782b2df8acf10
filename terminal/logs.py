"""Logging set-up: JSON lines for machines, plain lines for people."""

import logging
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter


def setup_logging(level: str = "info", fmt: Literal["auto", "json", "text"] = "auto") -> None:
    handler = logging.StreamHandler(sys.stdout)
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    if use_json:
        handler.setFormatter(
            JsonFormatter(
                "%(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="ts",
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
