"""The [sync] config section: safe defaults, clear refusals, and the settings it yields."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from sync.settings import SyncSection
from terminal.config import Config, TerminalSection, sync_settings

PUB = "h6YLfjw80HyEmq0eRnix/qEbG753buVo8XZp0fvGxZc="
KID = "hq-69f914cda98eda41"  # the key id of PUB


def test_defaults_are_off_and_safe() -> None:
    section = SyncSection()
    assert section.enabled is False
    assert section.mqtt_version == "5"
    assert section.prefix == "ykt/v1"
    assert section.session_expiry_seconds >= 7 * 24 * 3600


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"enabled": True, "broker_host": "mqtt.example.org", "hq_keys": {KID: PUB}}, "plain MQTT"),
        ({"enabled": True}, "hq_keys is required"),
        ({"hq_keys": {"k": "bm90IGEga2V5"}}, "32 bytes"),
        ({"hq_keys": {"bad kid!": PUB}}, "valid key id"),
        # A kid is its key's id: one configured under another name could be re-bound later.
        ({"hq_keys": {"hq-1": PUB}}, "not the id of its key: that key is " + KID),
        ({"hq_root_key": "bm90IGEga2V5"}, "hq_root_key: an Ed25519 public key is 32 bytes"),
        ({"mqtt_version": "4"}, "mqtt_version"),
        ({"session_expiry_seconds": 3600}, "session_expiry_seconds"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_values_are_refused_naming_the_key(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SyncSection(**fields)


def test_settings_from_the_section(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    cert = tmp_path / "t.crt"
    key = tmp_path / "t.key"
    for path in (ca, cert, key):
        path.write_text("x")
    section = SyncSection(
        enabled=True,
        broker_host="mqtt.example.org",
        tls_ca=f"file:{ca}",
        tls_cert=f"file:{cert}",
        tls_key=f"file:{key}",
        hq_keys={KID: PUB},
        hq_root_key=PUB,
        mqtt_version="3.1.1",
    )
    terminal = TerminalSection(id="gate-01", site="nc-admin", state_dir=tmp_path)
    settings = sync_settings(
        section,
        tid=terminal.id,
        site=terminal.site,
        state_dir=terminal.state_dir,
        software_version="1.2.3",
    )
    assert (settings.tid, settings.site, settings.port) == ("gate-01", "nc-admin", 8883)
    assert settings.tls is not None and settings.tls.key == key
    assert settings.key_file == tmp_path / "sync-ed25519.key"
    assert settings.mqtt_version == "3.1.1"
    assert settings.software_version == "1.2.3"
    assert settings.hq_root_key == PUB


def test_a_client_certificate_needs_its_key() -> None:
    with pytest.raises(ValidationError, match="go together"):
        SyncSection(tls_cert="file:/etc/hostname")


def test_a_terminal_without_the_root_key_is_warned_about() -> None:
    base = {
        "terminal": {"id": "gate-01", "site": "nc-admin"},
        "reader": {"driver": "sim"},
        "door": {"id": "east-gate"},
        "gate": {"driver": "sim"},
        "sync": {"enabled": True, "hq_keys": {KID: PUB}},
    }
    unpinned = Config.model_validate(base)
    assert any("sync.hq_root_key is not set" in w for w in unpinned.warnings())
    base["sync"]["hq_root_key"] = PUB  # type: ignore[index]
    assert not Config.model_validate(base).warnings()
