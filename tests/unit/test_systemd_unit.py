"""The unit file is checked by systemd's own tools, with the install path pointed at this venv."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "ykt-terminal.service"


@pytest.fixture
def unit_here(tmp_path: Path) -> Path:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (./dev installs it)")
    ykt = Path(sys.executable).with_name("ykt")
    text = UNIT.read_text().replace("/opt/ykt-terminal/.venv/bin/ykt", str(ykt))
    target = tmp_path / UNIT.name
    target.write_text(text)
    return target


def test_unit_verifies(unit_here: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit_here)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SYSTEMD_LOG_LEVEL": "warning"},
    )
    problems = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert problems == []
    assert result.returncode == 0, result.stderr


def test_unit_is_hardened(unit_here: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit_here)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr[-500:]
    assert float(match.group(1)) <= 2.5


def test_unit_has_the_supervision_settings() -> None:
    text = UNIT.read_text()
    for directive in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ExecStartPre=/opt/ykt-terminal/.venv/bin/ykt config check",
        "StateDirectory=ykt-terminal",
        "LoadCredential=",
        "DevicePolicy=closed",
    ):
        assert directive in text
