"""What sync is configured with: the ``[sync]`` section, and the plain values the engine and
link run on, whose defaults are the section's.

Off by default: a terminal works offline without it. Plain TCP is accepted only to a loopback
broker (tests, the demo); anywhere else TLS with a client certificate is required, because the
broker's ACL identifies a terminal by its certificate. Certificate, key and password are secret
references (``file:/path`` or ``credential:NAME``), never inline; the terminal resolves them when
it builds :class:`SyncSettings` (``terminal.config.sync``), since resolving is the drivers' and
sync depends on models only.
"""

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import Field, field_validator, model_validator

from models.settings import SecretRef, Section
from sync.keys import key_id
from sync.keyset import ONLINE_PREFIX
from sync.topics import DEFAULT_PREFIX

MQTT_PORT = 1883
MQTTS_PORT = 8883


_KID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
_PREFIX = r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$"
_WEEK = 7 * 24 * 3600


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SyncSection(Section):
    """The link to headquarters (PROTOCOL.md v1)."""

    enabled: bool = Field(False, description="Connect to HQ; off: the terminal runs offline only.")
    broker_host: str = Field(
        "127.0.0.1", min_length=1, description="MQTT broker host name or address."
    )
    broker_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description=f"Broker port; default {MQTTS_PORT} with TLS, {MQTT_PORT} without.",
    )
    mqtt_version: Literal["5", "3.1.1"] = Field(
        "5", description="MQTT protocol version: 5, or 3.1.1 for older brokers."
    )
    prefix: str = Field(
        DEFAULT_PREFIX,
        pattern=_PREFIX,
        description="Topic prefix shared with HQ (topics: prefix/site/...).",
    )
    tls_ca: SecretRef | None = Field(
        None, description="CA certificate of the broker (file:/path or credential:NAME); sets TLS."
    )
    tls_cert: SecretRef | None = Field(
        None, description="This terminal's client certificate (mTLS), with tls_key."
    )
    tls_key: SecretRef | None = Field(None, description="The client certificate's private key.")
    username: str | None = Field(
        None, description="Broker user name, if the broker uses passwords instead of certificates."
    )
    password: SecretRef | None = Field(None, description="File holding the broker password.")
    hq_keys: dict[str, str] = Field(
        default_factory=dict,
        description="HQ's first online signing keys: key id (hq- + 16 hex of the key's "
        "SHA-256) -> base64 raw Ed25519 public key, as 'ykt hq init' prints. Trusted until a "
        "keyset signed by hq_root_key replaces them.",
    )
    hq_root_key: str | None = Field(
        None,
        description="HQ's offline key-management key (base64 raw Ed25519 public key, as 'ykt "
        "hq init' prints): the only key whose signed keyset can change which online keys this "
        "terminal trusts. Without it the online keys can be changed only in this file.",
    )
    key_file: Path | None = Field(
        None,
        description="This terminal's signing key, created on first start with mode 0600; "
        "default <terminal.state_dir>/sync-ed25519.key.",
    )
    keepalive_seconds: int = Field(30, ge=5, le=600, description="MQTT keepalive.")
    session_expiry_seconds: int = Field(
        8 * 24 * 3600,
        ge=_WEEK,
        le=365 * 24 * 3600,
        description="How long the broker keeps this terminal's session while it is away "
        "(MQTT 5; at least 7 days).",
    )
    head_max_validity_seconds: int = Field(
        _WEEK,
        ge=60,
        description="Upper bound on how long one HQ head keeps the terminal out of degraded "
        "mode, whatever expiry HQ put in it.",
    )
    degraded_behind_changes: int = Field(
        500,
        ge=1,
        le=100_000,
        description="This many changes behind HQ's head (voided cards, balances not yet "
        "applied) is degraded mode too, however fresh the head.",
    )
    resync_after_seconds: float = Field(
        5.0, gt=0, le=600, description="Behind HQ's head this long without progress: resync."
    )
    tx_batch: int = Field(500, ge=1, le=5000, description="Transaction records per tx message.")
    tx_window: int = Field(
        4, ge=1, le=64, description="tx messages in flight before waiting for HQ's txack."
    )
    resend_seconds: float = Field(
        30.0,
        ge=1,
        le=3600,
        description="Resend unacknowledged transactions after this long "
        "(sooner, 2 s after a head from HQ left them unanswered).",
    )
    status_interval_seconds: float = Field(
        60.0, ge=5, le=3600, description="How often the retained status is refreshed."
    )
    reconnect_max_seconds: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="Cap of the random-exponential reconnect wait, which begins once the first "
        "20 retries (each within 2 s) have failed.",
    )
    max_message_bytes: int = Field(
        1 << 20, ge=64 * 1024, le=64 << 20, description="Larger inbound messages are rejected."
    )

    @field_validator("hq_keys")
    @classmethod
    def _keys(cls, keys: dict[str, str]) -> dict[str, str]:
        for kid, pub in keys.items():
            if not re.fullmatch(_KID, kid):
                raise ValueError(f"key id {kid!r} is not a valid key id")
            expected = key_id(_public_key(pub, f"key {kid}"), ONLINE_PREFIX)
            if kid != expected:
                # A kid is its key's id, so it can never be shown for another key.
                raise ValueError(f"key id {kid!r} is not the id of its key: that key is {expected}")
        return keys

    @field_validator("hq_root_key")
    @classmethod
    def _root(cls, pub: str | None) -> str | None:
        if pub is not None:
            _public_key(pub, "hq_root_key")
        return pub

    @model_validator(mode="after")
    def _consistent(self) -> "SyncSection":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_cert is not None and self.tls_ca is None:
            raise ValueError("a client certificate needs tls_ca")
        if self.enabled and self.tls_ca is None and not _loopback(self.broker_host):
            raise ValueError(
                f"plain MQTT to {self.broker_host} is refused: set tls_ca (and a client "
                "certificate), or use a broker on loopback"
            )
        remote = self.enabled and not _loopback(self.broker_host)
        if remote and self.tls_cert is None and self.username is None:
            # TLS alone proves the broker to the terminal, not the terminal to the broker: its
            # ACL could not tell this terminal from any other client.
            raise ValueError(
                f"TLS to {self.broker_host} without a client certificate is refused: set "
                "tls_cert and tls_key (or username and password if the broker uses passwords)"
            )
        if self.username is not None and self.password is None:
            raise ValueError("username needs password (a file holding it)")
        if self.enabled and not self.hq_keys:
            raise ValueError("hq_keys is required when sync is enabled")
        return self


def _public_key(pub: str, what: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(pub, validate=True)
    except binascii.Error:
        raise ValueError(f"{what}: not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{what}: an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def signing_key_file(section: SyncSection, state_dir: Path) -> Path:
    """Where this terminal's signing key is (the HQ link creates it there; diag reads it)."""
    return section.key_file or state_dir / "sync-ed25519.key"


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    cert: Path | None = None
    key: Path | None = None


_SECTION = SyncSection()


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """The section as the engine and link use it: secrets read, the port chosen, the terminal's
    identity added. Kept apart from the section because these are resolved values (tests and HQ
    tools build them without files or a config); each default is taken from the section so that
    it is written once."""

    tid: str
    site: str
    key_file: Path  # this terminal's Ed25519 key, generated on first start
    hq_keys: Mapping[str, str] = field(default_factory=dict)  # kid -> base64 raw public key
    hq_root_key: str | None = None  # base64 raw public key of the offline key-management key
    host: str = _SECTION.broker_host
    port: int = MQTT_PORT
    tls: TlsFiles | None = None
    username: str | None = None
    password: str | None = None
    prefix: str = _SECTION.prefix
    mqtt_version: str = _SECTION.mqtt_version
    keepalive: int = _SECTION.keepalive_seconds
    session_expiry: int = _SECTION.session_expiry_seconds
    max_message_bytes: int = _SECTION.max_message_bytes
    tx_batch: int = _SECTION.tx_batch
    tx_window: int = _SECTION.tx_window
    resend_after: float = _SECTION.resend_seconds
    resync_after: float = _SECTION.resync_after_seconds
    status_interval: float = _SECTION.status_interval_seconds
    reconnect_max: float = _SECTION.reconnect_max_seconds
    head_max_validity: int = _SECTION.head_max_validity_seconds
    degraded_behind: int = _SECTION.degraded_behind_changes
    software_version: str = "0"
