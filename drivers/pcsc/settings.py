"""What the PC/SC reader is configured with, and how a reader name pattern matches.

:class:`PcscSettings` is the config's ``[reader]`` section with ``driver = "pcsc"`` itself, so a
key has one name, one default and one check whether it comes from TOML or from a test. Its key
store carries the secret *reference*: the reader resolves it when it starts.
"""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from drivers.cardapp import DEFAULT_AID
from drivers.keystore import DEFAULT_SAM_AID
from models.settings import SecretRef, Section


def reader_matches(pattern: str, name: str) -> bool:
    """A case-insensitive substring, or failing that a regular expression searched in ``name``."""
    if pattern.lower() in name.lower():
        return True
    try:
        return re.search(pattern, name, re.IGNORECASE) is not None
    except re.error:
        return False


def _check_aid(text: str) -> str:
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2}){5,16}", text):
        raise ValueError("must be 5..16 bytes of hex, e.g. F0594B5401")
    return text.upper()


Aid = Annotated[str, AfterValidator(_check_aid)]


class SoftwareKeyStoreSettings(Section):
    """Master keys in a root-only file (pilots and tests)."""

    type: Literal["software"] = Field(description="Keys in a file.")
    key_file: SecretRef = Field(description="Key file reference (file:/path or credential:NAME).")


class PsamKeyStoreSettings(Section):
    """Master keys inside a PSAM in a second PC/SC slot; they never leave it."""

    type: Literal["psam"] = Field(description="Keys in a PSAM.")
    reader_pattern: str = Field(
        min_length=1, description="Regular expression matching the PSAM slot's reader name."
    )
    aid: Aid = Field(
        DEFAULT_SAM_AID.hex().upper(), description="Application selected on the PSAM (hex)."
    )


class PcscSettings(Section):
    """A PC/SC contactless reader reading CPU cards (docs/card-profile.md)."""

    driver: Literal["pcsc"] = Field(description="PC/SC reader through pcscd.")
    reader_pattern: str = Field(
        min_length=1, description="Regular expression matching the contactless reader's name."
    )
    mode: Literal["cpu", "uid"] = Field(
        "cpu",
        description="cpu: read and authenticate the card application; uid: legacy chip UID "
        "only (clonable, warned about at start).",
    )
    aid: Aid = Field(
        DEFAULT_AID.hex().upper(), description="Application identifier selected on the card (hex)."
    )
    key_id: int = Field(1, ge=0, le=255, description="Master key id used for authentication.")
    # 500 ms rather than the second the driver alone used to assume: every terminal built from
    # the config has run with 500 ms and the PC/SC tests exercise it, and a card that stops
    # answering keeps the holder waiting this long per command before "tap again". A site whose
    # cards are slower over the radio raises it (docs/card-profile.md).
    apdu_timeout_ms: int = Field(
        500,
        ge=50,
        le=5000,
        description="Longest wait for one card (or PSAM) answer, and for connecting.",
    )
    reconnect_max_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Cap of the doubling retry delay while pcscd or the reader is missing.",
    )
    key_store: (
        Annotated[SoftwareKeyStoreSettings | PsamKeyStoreSettings, Field(discriminator="type")]
        | None
    ) = Field(None, description="Where master keys live; required in cpu mode.")

    @model_validator(mode="after")
    def _keys_for_cpu_mode(self) -> "PcscSettings":
        if self.mode == "cpu" and self.key_store is None:
            raise ValueError("key_store is required when mode is cpu")
        return self

    @property
    def apdu_timeout(self) -> float:
        """:attr:`apdu_timeout_ms` in seconds, as the slots wait."""
        return self.apdu_timeout_ms / 1000
