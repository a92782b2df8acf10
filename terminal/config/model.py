"""The configuration schema: one pydantic model, TOML on disk (read by ``terminal.config.load``).

pydantic v2 rather than dataclasses because it gives, from one declaration, what operators need:
unknown keys rejected with their path, type errors with the offending value, a description on every
field, and a JSON schema that tools (and ``docs/config.md``) are generated from.

Every section derives from :class:`models.settings.Section`. A device's section is its driver's
own settings class (``[reader]`` with ``driver = "pcsc"`` is :class:`drivers.pcsc.PcscSettings`),
so the driver is handed the section as it was loaded. Secrets are never inline: a field of type
:data:`~models.settings.SecretRef` holds ``file:/path`` or ``credential:NAME`` (a systemd
``LoadCredential=`` name, read from ``$CREDENTIALS_DIRECTORY``).
"""

import re
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, model_validator

from drivers.pcsc.settings import PcscSettings, PsamKeyStoreSettings, SoftwareKeyStoreSettings
from drivers.turnstile.settings import SerialGateSettings
from models.credential import DEFAULT_CLASS_CODES, SiteCards
from models.settings import Section
from sync.settings import SyncSection
from terminal.config.diag import DiagSection
from terminal.config.faces import FacesSection
from terminal.config.privacy import PrivacySection
from terminal.config.qr import QrSection

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Asia/Shanghai)"
        ) from None
    return name


class TerminalSection(Section):
    """Who this terminal is."""

    id: str = Field(
        pattern=_ID_PATTERN,
        description="Terminal id, unique within the site; also the MQTT client id.",
    )
    site: str = Field(pattern=_ID_PATTERN, description="Site id as HQ names it.")
    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field(
        "Asia/Shanghai",
        description="IANA time zone of the site: schedules, holidays and dates are local to it.",
    )
    state_dir: Path = Field(
        Path("/var/lib/ykt-terminal"),
        description="Directory for the database and keys (systemd StateDirectory).",
    )


class LogSection(Section):
    """What the daemon logs and how."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level written."
    )
    format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="json: one JSON object per line; text: for people; auto: text on a TTY, "
        "json otherwise (journald, files).",
    )


class StoreSection(Section):
    """The local SQLite database."""

    path: Path | None = Field(
        None, description="Database file; default <terminal.state_dir>/terminal.db."
    )
    integrity_check_after_seconds: float = Field(
        120,
        ge=0,
        le=86_400,
        description="How long after start SQLite's full quick check of the database runs, off "
        "the tap path (it reads the whole file). Damage found: the terminal restarts in-process "
        "and the file is quarantined.",
    )
    integrity_check_hours: float = Field(
        24, ge=0, le=8760, description="How often the check runs again; 0: only after start."
    )


class DoorSection(Section):
    """The door or turnstile this terminal controls."""

    id: str = Field(pattern=_ID_PATTERN, description="Door id, as access groups list it.")
    direction: Literal["in", "out", "none"] = Field(
        "none",
        description="Which way this reader lets people through (turnstiles: in or out).",
    )
    open_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How long the gate stays released; no passage within it is recorded as "
        "not used.",
    )
    anti_passback: Literal["off", "soft", "hard"] = Field(
        "off",
        description="No second entry without an exit (or exit without entry) through this "
        "terminal's readers: soft admits and raises an event, hard refuses.",
    )
    anti_passback_minutes: int = Field(
        720, ge=1, le=10_080, description="How long a passage counts for anti-passback."
    )
    face: Literal["off", "holder", "always"] = Field(
        "off",
        description="Card + face: off; holder: for holders HQ marks require_face; always: "
        "for every card (needs [faces] enabled).",
    )
    face_only: bool = Field(
        False,
        description="Also admit people by face alone (1:N, no card); needs [faces] enabled and, "
        "unless faces.liveness.face_only is false, liveness models.",
    )


def _check_issuer(text: str) -> str:
    if not re.fullmatch(r"[0-9A-Fa-f]{16}", text):
        raise ValueError("an issuer id is 8 bytes of hex, e.g. 5943484E00000001")
    return text.upper()


def _check_class_codes(codes: dict[int, str]) -> dict[int, str]:
    bad = [code for code in codes if not 0 <= code <= 255]
    if bad:
        raise ValueError(f"class codes are one byte on the card (0..255), got {bad}")
    return codes


class CardsSection(Section):
    """What this site's cards say about themselves (docs/card-profile.md): who issued them and
    what the class byte means. A card that disagrees is refused with its own reason."""

    issuers: list[Annotated[str, AfterValidator(_check_issuer)]] = Field(
        default_factory=list,
        description="Issuer ids (8 bytes hex) of this site's cards; a card of another issuer "
        "is refused as card_issuer_unknown. Required with a PC/SC reader in cpu mode.",
    )
    classes: Annotated[dict[int, str], AfterValidator(_check_class_codes)] = Field(
        default_factory=lambda: dict(DEFAULT_CLASS_CODES),
        description="Card class code on the card -> class name in the registry; a card whose "
        "code names another class than the registry's is refused as card_class_mismatch.",
    )

    def site_cards(self) -> SiteCards:
        return SiteCards(frozenset(self.issuers), tuple(sorted(self.classes.items())))


class SimReaderSection(Section):
    """A simulated reader for the demo and tests."""

    driver: Literal["sim"] = Field(description="Simulated reader.")
    script: str | None = Field(
        None,
        description="Reader script to play (see docs/simulation.md); '-' reads commands from "
        "standard input; empty: no cards.",
    )


class SimGateSection(Section):
    """A simulated turnstile for the demo and tests."""

    driver: Literal["sim"] = Field(description="Simulated gate.")
    passage: Literal["pass", "timeout"] = Field(
        "pass", description="What the simulated turnstile reports after opening."
    )
    passage_delay_seconds: float = Field(
        0.5, ge=0, le=60, description="How long the simulated person takes to pass."
    )


# The config names every section *Section; for the devices these are the drivers' own classes.
PcscReaderSection = PcscSettings
SoftwareKeyStoreSection = SoftwareKeyStoreSettings
PsamKeyStoreSection = PsamKeyStoreSettings
SerialGateSection = SerialGateSettings

ReaderSection = Annotated[SimReaderSection | PcscSettings, Field(discriminator="driver")]
GateSection = Annotated[SimGateSection | SerialGateSettings, Field(discriminator="driver")]


# 2,000 yuan: a busy canteen line's hour of lunch, and the most one terminal may lose to an
# outage whose debits never reach HQ.
DEFAULT_OFFLINE_PER_TERMINAL = 200_000


class PosSection(Section):
    """The merchant this POS unit charges for (canteen, shop or barber)."""

    merchant: str = Field(
        pattern=_ID_PATTERN,
        description="Merchant id (for a canteen: the canteen id that meal periods, prices and "
        "holders' permitted canteens name).",
    )
    service: Literal["meal", "shop", "barber"] = Field(description="What this POS sells.")
    duplicate_window_seconds: int = Field(
        10,
        ge=0,
        le=600,
        description="The same card again within this many seconds asks for confirmation "
        "instead of charging twice.",
    )
    pin_max_failures: int = Field(
        3, ge=1, le=10, description="Consecutive wrong PINs before the account's PIN is locked."
    )
    offline_limit_fen: Annotated[int, Field(ge=0)] | Literal["none"] = Field(
        DEFAULT_OFFLINE_PER_TERMINAL,
        description="Most this terminal may charge, all cards together, while degraded (no "
        "fresh head from HQ, or far behind it) and its debits are not yet confirmed (fen); "
        '"none" removes the cap, which ykt config check warns about.',
    )
    max_amount_fen: int = Field(
        1_000_000, gt=0, le=100_000_000, description="Largest amount the keypad accepts (fen)."
    )
    amount_timeout_seconds: float = Field(
        60, gt=0, le=600, description="An entered amount waits this long for a card."
    )
    prompt_timeout_seconds: float = Field(
        30, gt=0, le=300, description="How long a PIN or confirmation prompt waits."
    )
    face_pay: bool = Field(
        False,
        description="Let customers pay by face (1:N, then they confirm on the display); needs "
        "[faces] enabled and, unless faces.liveness.face_only is false, liveness models.",
    )


class SimKeypadSection(Section):
    """Keys come from the reader script (amount, pin, confirm, cancel, correct)."""

    driver: Literal["sim"] = Field(description="Simulated keypad.")


class SimDisplaySection(Section):
    """Screens are logged (and kept for tests)."""

    driver: Literal["sim"] = Field(description="Simulated customer display.")


class Config(Section):
    """A terminal's whole configuration: a door terminal has [door] and [gate], a POS has [pos],
    [keypad] and [display]."""

    terminal: TerminalSection = Field(description="Identity of this terminal.")
    log: LogSection = Field(default_factory=LogSection, description="Logging.")
    store: StoreSection = Field(default_factory=StoreSection, description="Database.")
    reader: ReaderSection = Field(description="The card reader.")
    cards: CardsSection = Field(
        default_factory=CardsSection, description="This site's card issuer and class codes."
    )
    door: DoorSection | None = Field(None, description="The door this terminal controls.")
    gate: GateSection | None = Field(
        None, description="The gate or turnstile driver (door terminals)."
    )
    pos: PosSection | None = Field(None, description="The merchant (POS terminals).")
    keypad: SimKeypadSection | None = Field(None, description="The POS keypad.")
    display: SimDisplaySection | None = Field(None, description="The POS customer display.")
    diag: DiagSection = Field(
        default_factory=DiagSection, description="The local diagnostic socket (`ykt diag`)."
    )
    faces: FacesSection = Field(
        default_factory=FacesSection,
        description="Face recognition: camera, encoder, thresholds, liveness (docs/faces.md).",
    )
    sync: SyncSection = Field(
        default_factory=SyncSection,
        description="The link to HQ over MQTT (docs/protocol.md); off by default.",
    )
    qr: QrSection = Field(
        default_factory=QrSection,
        description="Electronic-card QR codes shown instead of a card (docs/qr.md); off by "
        "default.",
    )
    privacy: PrivacySection = Field(
        default_factory=PrivacySection,
        description="What is kept of holders' personal data beyond the role's need "
        "(docs/privacy.md).",
    )

    @model_validator(mode="after")
    def _one_role(self) -> "Config":
        if (self.door is None) == (self.pos is None):
            raise ValueError("a terminal has either a [door] or a [pos] section, exactly one")
        if self.door is not None and self.gate is None:
            raise ValueError("a [door] terminal needs a [gate] section")
        if self.pos is not None and (self.keypad is None or self.display is None):
            raise ValueError("a [pos] terminal needs [keypad] and [display] sections")
        reader = self.reader
        if isinstance(reader, PcscSettings) and reader.mode == "cpu" and not self.cards.issuers:
            raise ValueError(
                "cards.issuers is required with a PC/SC reader in cpu mode: the site's issuer "
                "id (docs/card-profile.md), so that other issuers' cards are not admitted"
            )
        if self.door is not None and self.door.face != "off" and not self.faces.enabled:
            raise ValueError(f"door.face = {self.door.face!r} needs [faces] enabled = true")
        if self.pos is not None and self.pos.face_pay:
            self._check_one_to_n("pos.face_pay")
        if self.door is not None and self.door.face_only:
            self._check_one_to_n("door.face_only")
        if self.privacy.pin_key_id is not None and self.pin_key_id is None:
            raise ValueError(
                "privacy.pin_key_id needs a key store: a PC/SC reader in cpu mode with "
                "reader.key_store"
            )
        return self

    def _check_one_to_n(self, key: str) -> None:
        if not self.faces.enabled:
            raise ValueError(f"{key} needs [faces] enabled = true")
        if self.faces.liveness.face_only and not self.faces.liveness.models:
            # Refused at start rather than at the first face: a printed photo must never open a
            # face-only gate or pay from someone's purse.
            raise ValueError(
                f"{key} needs liveness: set faces.liveness.models, or "
                "faces.liveness.face_only = false to accept faces without it"
            )

    @property
    def database_path(self) -> Path:
        return self.store.path or self.terminal.state_dir / "terminal.db"

    @property
    def pin_key_id(self) -> int | None:
        """The key store's master key id PIN hashes are sealed with; None without a key store
        (a simulated reader, or UID mode)."""
        reader = self.reader
        if not isinstance(reader, PcscSettings) or reader.mode != "cpu":
            return None
        return reader.key_id if self.privacy.pin_key_id is None else self.privacy.pin_key_id

    def warnings(self) -> list[str]:
        """Valid, but a choice someone should have made on purpose."""
        found = []
        if self.pos is not None and self.pos.offline_limit_fen == "none":
            found.append(
                'pos.offline_limit_fen = "none": while degraded this terminal charges without '
                "a terminal-wide cap, so an outage can lose any amount (RULES.md: money offline "
                "is bounded per card per day and per terminal)"
            )
        if self.pos is not None and self.pin_key_id is None:
            found.append(
                "PIN hashes are kept as HQ sends them (PBKDF2): this reader has no key store to "
                "seal them with (UID mode or a simulated reader), so whoever copies the database "
                "can search every six-digit PIN offline (docs/privacy.md)"
            )
        if self.sync.enabled and self.sync.hq_root_key is None:
            found.append(
                "sync.hq_root_key is not set: HQ cannot rotate or revoke its online keys on "
                "this terminal, so a stolen HQ key stays trusted until this file is edited"
            )
        return found
