"""What every configuration section is built from: one base model and one secret reference type.

Here rather than in the terminal's config package because the drivers' settings *are* config
sections (``drivers.pcsc.settings``, ``drivers.turnstile.settings``), and drivers depend on models
only. Pure: a reference is checked for its form here; whether its file exists is the resolver's
question (``drivers.secrets``), asked by the config loader through the validation context.

Every field typed :data:`SecretRef` carries :data:`SECRET` in its metadata, so what reports on a
config (``ykt config check``, the diag bundle) can find the secret fields by the model itself and
never print what was written in them: a key pasted inline where a reference belongs is a secret
all the same, and journald keeps what ``config check`` prints from the unit's ``ExecStartPre``.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


class Section(BaseModel):
    """Unknown keys are refused (a misspelt key must not silently fall back to its default) and
    a loaded section never changes under the code that read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _SecretMarker:
    def __repr__(self) -> str:
        return "SECRET"


SECRET = _SecretMarker()

# The validation context key under which the loader passes the resolver: with it, a reference
# to a missing file is refused together with every other problem of the file.
RESOLVE_SECRETS = "resolve_secrets"
SecretResolver = Callable[[str], object]

Scheme = Literal["file", "credential"]


def parse_reference(ref: str) -> tuple[Scheme, str]:
    """``(scheme, value)`` of ``file:/absolute/path`` or ``credential:NAME``; raises
    ``ValueError`` saying what is wrong (never repeating ``ref``: it may be a key pasted inline)."""
    scheme, _, value = ref.partition(":")
    if scheme == "file" and value:
        if not value.startswith("/"):
            raise ValueError("secret file must be an absolute path: file:/...")
        return "file", value
    if scheme == "credential" and value:
        if "/" in value:
            raise ValueError("credential name must not contain '/'")
        return "credential", value
    raise ValueError("a secret is a reference, 'file:/absolute/path' or 'credential:NAME'")


def _check_secret(ref: str, info: ValidationInfo) -> str:
    parse_reference(ref)
    context = info.context if isinstance(info.context, dict) else {}
    resolve: SecretResolver | None = context.get(RESOLVE_SECRETS)
    if resolve is not None:
        resolve(ref)
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
        for nested in models_in(info.annotation):
            found |= secret_paths(nested, path + ".")
    return frozenset(found)


def _marked(annotation: Any) -> bool:
    # ``SecretRef | None``: the marker sits on a member of the union, not on the field.
    if any(item is SECRET for item in getattr(annotation, "__metadata__", ())):
        return True
    return any(_marked(argument) for argument in getattr(annotation, "__args__", ()))


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation names: itself, or the members of its unions and containers."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for argument in getattr(annotation, "__args__", ()):
        found += models_in(argument)
    return found
