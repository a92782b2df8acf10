"""Secret references in the config: ``file:/absolute/path`` or ``credential:NAME``, never inline.

Every field typed :data:`SecretRef` carries :data:`SECRET` in its metadata, so what reports on a
config (``ykt config check``, the diag bundle) can find the secret fields by the model itself and
never print what was written in them: a key pasted inline where a reference belongs is a secret
all the same, and journald keeps what ``config check`` prints from the unit's ``ExecStartPre``.
"""

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel


class _SecretMarker:
    def __repr__(self) -> str:
        return "SECRET"


SECRET = _SecretMarker()


# Where ``credential:NAME`` points when the config is checked outside systemd: a directory laid
# out like $CREDENTIALS_DIRECTORY, or the unit's LoadCredential= sources by name.
CredentialSource = Path | Mapping[str, Path]
_credentials: ContextVar[CredentialSource | None] = ContextVar("credentials", default=None)
_LOAD_CREDENTIAL = re.compile(r"^\s*LoadCredential\s*=\s*([^:\s]+):(\S+)\s*$")


@contextlib.contextmanager
def credentials_from(source: CredentialSource) -> Iterator[None]:
    """Resolve ``credential:NAME`` from ``source`` instead of $CREDENTIALS_DIRECTORY."""
    token = _credentials.set(source)
    try:
        yield
    finally:
        _credentials.reset(token)


def unit_credentials(unit: Path) -> dict[str, Path]:
    """``LoadCredential=NAME:PATH`` lines of a systemd unit, as NAME -> PATH."""
    try:
        text = unit.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the unit {unit}: {exc}") from None
    found = {}
    for line in text.splitlines():
        match = _LOAD_CREDENTIAL.match(line)
        if match:
            found[match.group(1)] = Path(match.group(2))
    if not found:
        raise ValueError(f"{unit} has no LoadCredential=NAME:PATH line")
    return found


def _credential_path(name: str) -> Path:
    source = _credentials.get()
    if isinstance(source, Path):
        return source / name
    if source is not None:
        if name not in source:
            raise ValueError(f"credential {name!r} is not among the unit's LoadCredential= lines")
        return source[name]
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ValueError(
            f"credential {name!r} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=); "
            "outside systemd check with --credentials-dir DIR or --unit FILE, or use file:/path"
        )
    return Path(directory) / name


def resolve_secret(ref: str) -> Path:
    """The file a secret reference points at; raises ``ValueError`` saying what is wrong."""
    scheme, _, value = ref.partition(":")
    if scheme == "file" and value:
        path = Path(value)
        if not path.is_absolute():
            raise ValueError("secret file must be an absolute path: file:/...")
    elif scheme == "credential" and value:
        if "/" in value:
            raise ValueError("credential name must not contain '/'")
        path = _credential_path(value)
    else:
        raise ValueError("a secret is a reference, 'file:/absolute/path' or 'credential:NAME'")
    if not path.is_file():
        raise ValueError(f"secret file {path} does not exist or is not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"secret file {path} is not readable by this user")
    return path


def _check_secret(ref: str) -> str:
    resolve_secret(ref)
    return ref


SecretRef = Annotated[str, AfterValidator(_check_secret), SECRET]


def is_reference(value: object) -> bool:
    return isinstance(value, str) and value.startswith(("file:", "credential:"))


def secret_paths(model: type[BaseModel], prefix: str = "") -> frozenset[str]:
    """Dotted paths (``sync.password``) of every secret field under ``model``; a union's member
    tags are not part of them, as in the messages of ``ykt config check``."""
    found: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if any(item is SECRET for item in info.metadata) or _marked(info.annotation):
            found.add(path)
        for nested in _models_in(info.annotation):
            found |= secret_paths(nested, path + ".")
    return frozenset(found)


def _marked(annotation: Any) -> bool:
    # ``SecretRef | None``: the marker sits on a member of the union, not on the field.
    if any(item is SECRET for item in getattr(annotation, "__metadata__", ())):
        return True
    return any(_marked(argument) for argument in getattr(annotation, "__args__", ()))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in getattr(annotation, "__args__", ()):
        found += _models_in(argument)
    return found
