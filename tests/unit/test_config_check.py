"""``ykt config check`` runs what the daemon runs at start, outside systemd too.

It used to exit 2 on every shipped config outside systemd ("credential 'card-keys' needs
$CREDENTIALS_DIRECTORY"), and to say "ok" for a key file (mode 0644, or not TOML) that the daemon
then refused at start.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from terminal.cli import main

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "config").glob("*.toml"))
UNIT = ROOT / "systemd" / "ykt-terminal.service"
KEYS = '[master_keys]\n1 = "2B7E151628AED2A6ABF7158809CF4F3C"\n'


@pytest.fixture(autouse=True)
def outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def credentials(tmp_path: Path, text: str = KEYS, mode: int = 0o600) -> Path:
    directory = tmp_path / "credentials"
    directory.mkdir()
    key_file = directory / "card-keys"
    key_file.write_text(text)
    key_file.chmod(mode)
    return directory


@pytest.mark.parametrize("config", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_passes_outside_systemd(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["config", "check", str(config), "--credentials-dir", str(credentials(tmp_path))]) == 0
    )
    assert capsys.readouterr().out.strip() == "ok"


def test_without_credentials_it_says_how_to_check_outside_systemd(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["config", "check", str(ROOT / "config" / "gate.toml")]) == 2
    assert "--credentials-dir DIR or --unit FILE" in capsys.readouterr().err


def test_the_units_load_credential_lines_name_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(ROOT / "config" / "gate.toml"), "--unit", str(UNIT)]) == 2
    assert "/etc/ykt-terminal/card-keys.toml does not exist" in capsys.readouterr().err
    unit = tmp_path / "ykt-terminal.service"
    keys = credentials(tmp_path) / "card-keys"
    unit.write_text(f"[Service]\nLoadCredential=card-keys:{keys}\n")
    assert main(["config", "check", str(ROOT / "config" / "gate.toml"), "--unit", str(unit)]) == 0


@pytest.mark.parametrize(
    ("text", "mode", "says"),
    [
        (KEYS, 0o644, "mode 0644 lets group or others in"),
        ("this is not toml = = =\n", 0o600, "not valid UTF-8 TOML"),
        ('[master_keys]\n1 = "00"\n', 0o600, "must be 32 hex digits"),
    ],
)
def test_a_key_file_the_daemon_refuses_is_refused_by_the_check_too(
    text: str, mode: int, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = credentials(tmp_path, text, mode)
    config = ROOT / "config" / "gate.toml"
    assert main(["config", "check", str(config), "--credentials-dir", str(directory)]) == 2
    assert says in capsys.readouterr().err
    daemon = subprocess.run(
        [sys.executable, "-m", "terminal", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": str(directory)},
        check=False,
    )
    assert daemon.returncode == 2
    assert says in daemon.stdout + daemon.stderr  # the log goes to stdout, for journald
