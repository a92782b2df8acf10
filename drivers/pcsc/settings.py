"""What the PC/SC reader is configured with, and how a reader name pattern matches."""

import re
from dataclasses import dataclass
from pathlib import Path

from drivers.cardapp import DEFAULT_AID, CardMode
from drivers.keystore import DEFAULT_SAM_AID
from models.errors import ConfigError


def reader_matches(pattern: str, name: str) -> bool:
    """A case-insensitive substring, or failing that a regular expression searched in ``name``."""
    if pattern.lower() in name.lower():
        return True
    try:
        return re.search(pattern, name, re.IGNORECASE) is not None
    except re.error:
        return False


def _hex_setting(value: str, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not hex") from None
    if not 5 <= len(raw) <= 16:
        raise ConfigError(f"{name}: an AID has 5 to 16 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True, slots=True)
class PcscSettings:
    """What the PC/SC reader needs; the terminal's config layer fills it from TOML."""

    reader_pattern: str = ""  # substring or regex of the contactless reader's name; "" = any
    sam_reader_pattern: str | None = None  # the PSAM slot; None = no PSAM
    mode: str = CardMode.CPU.value  # "cpu" (genuine-card check) or "uid" (legacy, clonable)
    aid: str = DEFAULT_AID.hex().upper()
    key_id: int = 1
    key_file: Path | None = None  # software key store, when there is no PSAM
    sam_aid: str | None = DEFAULT_SAM_AID.hex().upper()  # None: the PSAM needs no SELECT
    apdu_timeout: float = 1.0  # seconds for one APDU (and for connecting)
    max_backoff: float = 5.0  # cap of the retry delay while pcscd or the reader is missing

    def __post_init__(self) -> None:
        try:
            CardMode(self.mode)
        except ValueError:
            raise ConfigError(f"mode: {self.mode!r} is not 'cpu' or 'uid'") from None
        _hex_setting(self.aid, "aid")
        if self.sam_aid is not None:
            _hex_setting(self.sam_aid, "sam_aid")
        if not 0 <= self.key_id <= 0xFF:
            raise ConfigError(f"key_id: {self.key_id} is outside 0..255")
        if not 0 < self.apdu_timeout <= 30:
            raise ConfigError(f"apdu_timeout: {self.apdu_timeout} s is outside (0, 30]")
        if not 0 < self.max_backoff <= 300:
            raise ConfigError(f"max_backoff: {self.max_backoff} s is outside (0, 300]")
