"""Where a secret reference points: the one resolver of ``file:/path`` and ``credential:NAME``.

In drivers so that a driver given a section with a :data:`~models.settings.SecretRef` resolves it
itself, as the config loader and ``ykt config check`` do: all of them see the same file, and
refuse it for the same reason. Reading the file (a key file's mode and owner, a certificate's
PEM) stays with whoever knows its format.
"""

import contextlib
import os
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path

from models.settings import parse_reference

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
    scheme, value = parse_reference(ref)
    path = Path(value) if scheme == "file" else _credential_path(value)
    if not path.is_file():
        raise ValueError(f"secret file {path} does not exist or is not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"secret file {path} is not readable by this user")
    return path
