"""The ``[diag]`` config section: where the diag socket lives and who may use it."""

from pathlib import Path

from pydantic import Field

from models.settings import Section

DEFAULT_SOCKET = Path("/run/ykt-terminal/diag.sock")
DEFAULT_GROUP = "ykt-diag"


class DiagSection(Section):
    """The local diagnostic channel technicians use with `ykt diag`."""

    enabled: bool = Field(
        True,
        description="Serve the diag socket. Off: only the read-only commands work, and only for "
        "users who can read the database (root).",
    )
    socket: Path = Field(
        DEFAULT_SOCKET,
        description="Unix socket the daemon serves diag commands on (under systemd's "
        "RuntimeDirectory).",
    )
    group: str = Field(
        DEFAULT_GROUP,
        min_length=1,
        description="Besides root, members of this group may use the socket (created by the "
        "sysusers file); checked on every connection with the peer's credentials.",
    )
    card_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=300,
        description="Longest wait for the card of a `ykt diag card` dry run.",
    )
