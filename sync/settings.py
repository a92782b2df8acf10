"""What the sync engine and link need to know, as plain values (the config schema is terminal's)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sync.topics import DEFAULT_PREFIX


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True, slots=True)
class SyncSettings:
    tid: str
    site: str
    key_file: Path  # this terminal's Ed25519 key, generated on first start
    hq_keys: Mapping[str, str] = field(default_factory=dict)  # kid -> base64 raw public key
    hq_root_key: str | None = None  # base64 raw public key of the offline key-management key
    host: str = "127.0.0.1"
    port: int = 1883
    tls: TlsFiles | None = None
    username: str | None = None
    password: str | None = None
    prefix: str = DEFAULT_PREFIX
    mqtt_version: str = "5"  # "5" or "3.1.1"
    keepalive: int = 30
    session_expiry: int = 8 * 24 * 3600  # PROTOCOL.md: at least 7 days
    max_message_bytes: int = 1 << 20
    tx_batch: int = 500  # records per tx message
    tx_window: int = 4  # tx messages sent and not yet acknowledged
    resend_after: float = 30.0  # seconds without a txack before resending
    resync_after: float = 5.0  # behind the head this long without progress: ask again
    status_interval: float = 60.0
    reconnect_max: float = 60.0  # cap of the random-exponential reconnect wait
    head_max_validity: int = 7 * 24 * 3600  # a head promising longer is honoured only this long
    degraded_behind: int = 500  # changes behind the head beyond which money is held to the caps
    software_version: str = "0"
