"""The ``[sync]`` section turned into what the sync package runs on, its secrets resolved here.

The section itself is sync's (:class:`sync.settings.SyncSection`); resolving its references is
the drivers' resolver's, which sync may not import, so the terminal does it when it builds the
settings.
"""

from pathlib import Path

from drivers.secrets import resolve_secret
from sync.settings import (
    MQTT_PORT,
    MQTTS_PORT,
    SyncSection,
    SyncSettings,
    TlsFiles,
    signing_key_file,
)


def sync_settings(
    section: SyncSection, *, tid: str, site: str, state_dir: Path, software_version: str
) -> SyncSettings:
    """The plain values the sync package runs on (secrets resolved to files here)."""
    tls = None
    if section.tls_ca is not None:
        tls = TlsFiles(
            resolve_secret(section.tls_ca),
            resolve_secret(section.tls_cert) if section.tls_cert else None,
            resolve_secret(section.tls_key) if section.tls_key else None,
        )
    password = None
    if section.password is not None:
        password = resolve_secret(section.password).read_text(encoding="utf-8").strip()
    return SyncSettings(
        tid=tid,
        site=site,
        key_file=signing_key_file(section, state_dir),
        hq_keys=dict(section.hq_keys),
        hq_root_key=section.hq_root_key,
        host=section.broker_host,
        port=section.broker_port or (MQTTS_PORT if tls else MQTT_PORT),
        tls=tls,
        username=section.username,
        password=password,
        prefix=section.prefix,
        mqtt_version=section.mqtt_version,
        keepalive=section.keepalive_seconds,
        session_expiry=section.session_expiry_seconds,
        max_message_bytes=section.max_message_bytes,
        tx_batch=section.tx_batch,
        tx_window=section.tx_window,
        resend_after=section.resend_seconds,
        resync_after=section.resync_after_seconds,
        status_interval=section.status_interval_seconds,
        reconnect_max=section.reconnect_max_seconds,
        head_max_validity=section.head_max_validity_seconds,
        degraded_behind=section.degraded_behind_changes,
        software_version=software_version,
    )
