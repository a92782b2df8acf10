"""A device's config section is its driver's settings: one class, one default, one check.

The PC/SC reader's settings and the config's ``[reader]`` section used to be two classes whose
APDU timeouts differed (1 s in the driver, 500 ms in the config), so a reader built in a test or
a benchmark did not behave as one built from a terminal's file.
"""

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from drivers.camera.settings import CameraSettings
from drivers.pcsc.settings import PcscSettings, PsamKeyStoreSettings, SoftwareKeyStoreSettings
from drivers.turnstile.settings import SerialGateSettings
from models.errors import ConfigError
from models.settings import Section, models_in
from sync.settings import SyncSection, SyncSettings
from terminal import config
from terminal.config import Config, FacesSection

BASE = """
[terminal]
id = "gate-01"
site = "centre"
[door]
id = "east-gate"
"""
SIM_READER = '[reader]\ndriver = "sim"\n'
SIM_GATE = '[gate]\ndriver = "sim"\n'
UID_READER = '[reader]\ndriver = "pcsc"\nreader_pattern = "ACS"\nmode = "uid"\n'
SERIAL_GATE = '[gate]\ndriver = "serial"\nport = "/dev/ttyUSB0"\n'


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    return config.load(path)


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value)


def members(model: type[BaseModel], field: str) -> set[type[BaseModel]]:
    return set(models_in(model.model_fields[field].annotation))


def test_the_config_sections_are_the_drivers_settings() -> None:
    assert PcscSettings in members(Config, "reader")
    assert SerialGateSettings in members(Config, "gate")
    assert members(PcscSettings, "key_store") == {SoftwareKeyStoreSettings, PsamKeyStoreSettings}
    assert Config.model_fields["sync"].annotation is SyncSection
    assert FacesSection.model_fields["camera"].annotation is CameraSettings
    assert config.PcscReaderSection is PcscSettings
    assert config.SerialGateSection is SerialGateSettings


def test_every_section_has_the_one_base() -> None:
    seen: set[type[BaseModel]] = set()

    def walk(model: type[BaseModel]) -> None:
        assert issubclass(model, Section), model
        seen.add(model)
        for info in model.model_fields.values():
            for inner in models_in(info.annotation):
                if inner not in seen:
                    walk(inner)

    walk(Config)
    assert {PcscSettings, SerialGateSettings, SyncSection, CameraSettings} <= seen


@pytest.mark.parametrize(
    ("section", "typo", "named"),
    [
        (SIM_GATE + UID_READER, "apdu_timeout = 1.0", "reader.apdu_timeout: unknown key"),
        (SIM_READER + SERIAL_GATE, "ack_timeout = 0.3", "gate.ack_timeout: unknown key"),
    ],
)
def test_an_unknown_key_in_a_driver_section_is_refused_by_name(
    tmp_path: Path, section: str, typo: str, named: str
) -> None:
    assert named in refusal(tmp_path, BASE + section + typo + "\n")


def test_the_driver_refuses_an_unknown_setting_too() -> None:
    with pytest.raises(ValidationError, match="apdu_timeout"):
        PcscSettings.model_validate(
            {"driver": "pcsc", "reader_pattern": "ACS", "mode": "uid", "apdu_timeout": 1.0}
        )


def test_one_default_from_toml_and_from_the_constructor(tmp_path: Path) -> None:
    reader = load(tmp_path, BASE + UID_READER + SIM_GATE).reader
    built = PcscSettings(driver="pcsc", reader_pattern="ACS", mode="uid")
    assert reader == built
    assert built.apdu_timeout_ms == 500 and built.apdu_timeout == 0.5
    gate = load(tmp_path, BASE + SIM_READER + SERIAL_GATE).gate
    assert gate == SerialGateSettings(driver="serial", port="/dev/ttyUSB0")


def test_the_sync_settings_take_their_defaults_from_the_section(tmp_path: Path) -> None:
    section = SyncSection()
    settings = SyncSettings(tid="gate-01", site="centre", key_file=tmp_path / "k")
    pairs: dict[str, Any] = {
        "broker_host": "host",
        "prefix": "prefix",
        "mqtt_version": "mqtt_version",
        "keepalive_seconds": "keepalive",
        "session_expiry_seconds": "session_expiry",
        "max_message_bytes": "max_message_bytes",
        "tx_batch": "tx_batch",
        "tx_window": "tx_window",
        "resend_seconds": "resend_after",
        "resync_after_seconds": "resync_after",
        "status_interval_seconds": "status_interval",
        "reconnect_max_seconds": "reconnect_max",
        "head_max_validity_seconds": "head_max_validity",
        "degraded_behind_changes": "degraded_behind",
    }
    for key, name in pairs.items():
        assert getattr(settings, name) == getattr(section, key), key


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (SIM_GATE + UID_READER + 'aid = "F059"\n', "reader.aid: must be 5..16 bytes of hex"),
        (UID_READER.replace('"uid"', '"cpu"') + SIM_GATE, "key_store is required"),
        (SIM_GATE + UID_READER + "apdu_timeout_ms = 10\n", "reader.apdu_timeout_ms"),
        (
            SIM_READER + SERIAL_GATE + "silence_timeout_seconds = 0.5\n",
            "silence_timeout_seconds (0.5) is shorter than status_interval_seconds (1.0)",
        ),
    ],
)
def test_a_bad_driver_setting_is_refused_with_its_key(tmp_path: Path, text: str, says: str) -> None:
    assert says in refusal(tmp_path, BASE + text)


def test_a_key_store_carries_the_reference_and_loading_resolves_it(tmp_path: Path) -> None:
    # Building the section checks the reference's form only; whether the file is there is asked
    # when a config is loaded (and by the reader when it starts).
    absent = f"file:{tmp_path}/absent.toml"
    assert SoftwareKeyStoreSettings(type="software", key_file=absent).key_file == absent
    with pytest.raises(ValidationError, match="a secret is a reference"):
        SoftwareKeyStoreSettings(type="software", key_file="00112233445566778899aabbccddeeff")
    text = (
        BASE
        + '[reader]\ndriver = "pcsc"\nreader_pattern = "ACS"\n[reader.key_store]\n'
        + f'type = "software"\nkey_file = "{absent}"\n[cards]\nissuers = ["5943484E00000001"]\n'
        + SIM_GATE
    )
    assert "reader.key_store.key_file: secret file" in refusal(tmp_path, text)
