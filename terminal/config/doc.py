"""The JSON schema and the Markdown reference, both generated from the config model.

The committed copies in docs/ are compared with these by the tests, so the reference cannot drift
from the code: change a field, run ``ykt config schema`` / ``ykt config reference``, commit both.
"""

import inspect
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from models.settings import models_in
from terminal.config.model import Config

SCHEMA_FILE = "config.schema.json"
REFERENCE_FILE = "config.md"


def json_schema() -> str:
    return json.dumps(Config.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f'`"{value}"`' for value in get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in get_args(annotation) if a is not type(None)]
        optional = type(None) in get_args(annotation)
        return " or ".join(names) + (" (optional)" if optional else "")
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "(table)"
    if info.default is PydanticUndefined:
        return "**required**"
    if info.default is None:
        return "(empty)"
    return f"`{json.dumps(info.default, default=str, ensure_ascii=False)}`"


def _constraints(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        for name, symbol in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            value = getattr(item, name, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return f" ({', '.join(parts)})" if parts else ""


def _section(lines: list[str], key: str, model: type[BaseModel]) -> None:
    tag = next(
        (
            (name, get_args(info.annotation)[0])
            for name, info in model.model_fields.items()
            if get_origin(info.annotation) is Literal and len(get_args(info.annotation)) == 1
        ),
        None,
    )
    title = f"## `[{key}]`" + (f' with `{tag[0]} = "{tag[1]}"`' if tag else "")
    lines += [
        title,
        "",
        inspect.cleandoc(model.__doc__ or ""),
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
    ]
    nested = []
    for name, info in model.model_fields.items():
        description = (info.description or "").replace("|", "\\|") + _constraints(info)
        lines.append(
            f"| `{name}` | {_type_name(info.annotation)} | {_default(info)} | {description} |"
        )
        nested += [(f"{key}.{name}", m) for m in models_in(info.annotation)]
    lines.append("")
    for nested_key, nested_model in nested:
        _section(lines, nested_key, nested_model)


def reference() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the models in `terminal/config/` and the drivers' settings by",
        "`ykt config reference`; do not edit by hand.",
        "Unknown keys are rejected. Secrets are references (`file:/path` or `credential:NAME`),",
        "never values. Check a file with `ykt config check FILE` (outside systemd add",
        "`--unit FILE` or `--credentials-dir DIR` for the credentials).",
        "",
    ]
    for key, info in Config.model_fields.items():
        for model in models_in(info.annotation):
            _section(lines, key, model)
    return "\n".join(lines).rstrip() + "\n"
