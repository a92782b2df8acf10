"""What is written in a secret field is never printed: not by `ykt config check` (whose output
the unit's ExecStartPre sends to journald), not in the diag bundle; key-like runs in free text are
masked too."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.settings import secret_paths
from terminal.config import DEFAULT_OFFLINE_PER_TERMINAL, Config
from terminal.diag import redact

ROOT = Path(__file__).resolve().parents[2]
AES_KEY = "00112233445566778899aabbccddeeff"
PASSWORD = "hunter2-SuperSecretBrokerPassword"

BASE = """
[terminal]
id = "gate-01"
site = "demo"
[door]
id = "east-gate"
[gate]
driver = "sim"
"""
INLINE = {
    "an AES master key in key_file": BASE
    + f"""
[reader]
driver = "pcsc"
reader_pattern = "ACS"
[reader.key_store]
type = "software"
key_file = "{AES_KEY}"
""",
    "a broker password inline": BASE
    + f"""
[reader]
driver = "sim"
[sync]
enabled = true
password = "{PASSWORD}"
""",
    "a key as a relative file reference": BASE
    + f"""
[reader]
driver = "sim"
[sync]
enabled = true
tls_key = "file:{AES_KEY}"
""",
}


def test_the_secret_fields_are_found_by_the_model() -> None:
    assert secret_paths(Config) >= {
        "reader.key_store.key_file",
        "sync.password",
        "sync.tls_key",
        "sync.tls_cert",
        "sync.tls_ca",
    }


@pytest.mark.parametrize("case", INLINE)
def test_config_check_never_repeats_a_secret(case: str, tmp_path: Path) -> None:
    config = tmp_path / "terminal.toml"
    config.write_text(INLINE[case])
    result = subprocess.run(
        [sys.executable, "-m", "terminal", "config", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert AES_KEY not in said and PASSWORD not in said and "hunter2" not in said
    assert "a secret field" in said  # and it still says which key is wrong


def test_the_bundle_config_redacts_a_secret_field_whatever_its_name() -> None:
    dumped = {"reader": {"key_store": {"type": "software", "key_file": AES_KEY}}}
    redacted = redact.redact_config(dumped, secret_paths(Config))
    assert redacted["reader"]["key_store"]["key_file"] == redact.REDACTED
    kept = redact.redact_config(
        {"reader": {"key_store": {"key_file": "credential:card-keys"}}}, secret_paths(Config)
    )
    assert kept["reader"]["key_store"]["key_file"] == "credential:card-keys"


def test_key_like_runs_are_masked_in_free_text() -> None:
    line = (
        f"loaded key {AES_KEY.upper()} and psk=dGhpcyBpcyBhIDE2Qnl0ZUtleQ== for "
        "terminal.flows.door at /var/lib/ykt-terminal/terminal.db"
    )
    masked = redact.mask_secrets(line)
    assert AES_KEY.upper() not in masked and "dGhpcyBpcyBhIDE2Qnl0ZUtleQ" not in masked
    assert masked.endswith("for terminal.flows.door at /var/lib/ykt-terminal/terminal.db")


@given(st.binary(min_size=16, max_size=64))
def test_any_key_of_16_bytes_or_more_is_masked_in_hex(key: bytes) -> None:
    assert key.hex() not in redact.mask_secrets(f"key={key.hex()};")


@given(st.text(alphabet="abcdefghij klmnop./_-:", max_size=200))
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact.mask_secrets(text) == text


def test_removing_the_offline_cap_is_warned_about(tmp_path: Path) -> None:
    config = tmp_path / "till.toml"
    config.write_text(
        '[terminal]\nid = "pos-01"\nsite = "demo"\n[reader]\ndriver = "sim"\n'
        '[pos]\nmerchant = "shop-1"\nservice = "shop"\noffline_limit_fen = "none"\n'
        '[keypad]\ndriver = "sim"\n[display]\ndriver = "sim"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "terminal", "config", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok"
    assert 'warning: pos.offline_limit_fen = "none"' in result.stderr
    capped = config.read_text().replace('offline_limit_fen = "none"\n', "")
    config.write_text(capped)
    section = Config.model_validate(tomllib.loads(capped)).pos
    assert section is not None and section.offline_limit_fen == DEFAULT_OFFLINE_PER_TERMINAL
