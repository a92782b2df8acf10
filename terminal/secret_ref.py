"""Secret references in the config: ``file:/absolute/path`` or ``credential:NAME``, never inline.

Every field typed :data:`SecretRef` carries :data:`SECRET` in its metadata, so what reports on a
config (``ykt config check``, the diag bundle) can find the secret fields by the model itself and
never print what was written in them: a key pasted inline where a reference belongs is a secret
all the same, and journald keeps what ``config check`` prints from the unit's ``ExecStartPre``.
"""

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel


class _SecretMarker:
    def __repr__(self) -> str:
        return "SECRET"


SECRET = _SecretMarker()


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
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise ValueError(
                f"credential {value!r} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=); "
                "outside systemd use file:/path instead"
            )
        path = Path(directory) / value
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
