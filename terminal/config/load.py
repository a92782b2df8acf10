"""Reading a config: TOML in, a validated :class:`~terminal.config.model.Config` or a
``ConfigError`` listing every problem, each with its key path, out."""

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drivers.secrets import resolve_secret
from models.errors import ConfigError
from models.settings import RESOLVE_SECRETS, secret_paths
from terminal.config.model import Config

# pydantic puts a union member's tag into the path (reader.pcsc.aid); people wrote reader.aid.
_UNION_TAGS = {"sim", "pcsc", "serial", "software", "psam"}


def _location(loc: tuple[int | str, ...], tags: set[str]) -> str:
    parts = [str(p) for p in loc if str(p) not in tags]
    return ".".join(parts) or "(top level)"


def describe_errors(error: ValidationError) -> list[str]:
    """One line per problem: the key path and why, in words an installer understands. What was
    written in a secret field is never repeated (it may be a key pasted inline)."""
    secrets = secret_paths(Config)
    lines = []
    for item in error.errors(include_url=False):
        where = _location(tuple(item["loc"]), _UNION_TAGS)
        kind = item["type"]
        if kind == "extra_forbidden":
            lines.append(f"{where}: unknown key (check the spelling against docs/config.md)")
        elif kind == "missing":
            lines.append(f"{where}: required key is missing")
        else:
            message = item["msg"].removeprefix("Value error, ")
            if where == "(top level)":
                lines.append(message)  # a rule across sections: its message names the keys
            elif where in secrets:
                lines.append(f"{where}: {message} (the value is not shown: a secret field)")
            else:
                lines.append(f"{where}: {message} (got {item.get('input')!r})")
    return lines


def parse(data: dict[str, Any]) -> Config:
    """Validate ``data``; every secret reference must also name a readable file (resolved as the
    drivers will, so a missing one is listed with the file's other problems)."""
    try:
        return Config.model_validate(data, context={RESOLVE_SECRETS: resolve_secret})
    except ValidationError as exc:
        raise ConfigError("\n".join(describe_errors(exc))) from None


def load(path: Path) -> Config:
    """Read and validate a TOML config; raises ``ConfigError`` listing every problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}:\n{exc}") from None
