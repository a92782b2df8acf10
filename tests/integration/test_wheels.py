"""The terminal's wheel is the appliance and nothing else; the development tools have their own.

Both wheels are built for real (setuptools, no build isolation: the venv's setuptools, offline)
and their file lists read back.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from terminal import cli

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
APPLIANCE = ("models", "drivers", "sync", "terminal")


def _wheel(source: Path, out: Path) -> zipfile.ZipFile:
    # From a copy: setuptools builds in the source tree, and a build/ left there by an earlier
    # layout would slip modules that no longer exist into the wheel.
    tree = out / "src"
    shutil.copytree(
        ROOT,
        tree,
        ignore=shutil.ignore_patterns(
            ".*", "build", "*.egg-info", "__pycache__", "bench", "docs", "tests"
        ),
    )
    project = tree / source.relative_to(ROOT)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "-q"]
    subprocess.run(
        [*pip, "--no-deps", "--no-build-isolation", "-w", str(out), str(project)],
        check=True,
        timeout=180,
        capture_output=True,
    )
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


@pytest.fixture(scope="module")
def terminal_wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return _wheel(ROOT, tmp_path_factory.mktemp("terminal-wheel"))


@pytest.fixture(scope="module")
def terminal_files(terminal_wheel: zipfile.ZipFile) -> list[str]:
    return terminal_wheel.namelist()


def test_the_terminal_wheel_holds_the_appliance_only(terminal_files: list[str]) -> None:
    modules = [name for name in terminal_files if name.endswith(".py")]
    tops = {name.split("/")[0] for name in modules}
    assert tops == set(APPLIANCE)
    # No reference HQ, emulator, board simulator, mosquitto runner, demo or demo site.
    for name in modules:
        assert not any(
            word in name for word in ("hq", "cardemu", "simboard", "simworld", "mosquitto", "demo")
        ), name
    assert not any(name.endswith(("site.toml", "demo.toml")) for name in terminal_files)
    # The appliance itself is all there: the migrations, the daemon, the PC/SC driver.
    assert "terminal/daemon.py" in modules and "drivers/pcsc/reader.py" in modules
    assert any(name.startswith("terminal/store/migrations/") for name in terminal_files)


def test_the_terminal_wheel_needs_no_spreadsheet_reader(terminal_wheel: zipfile.ZipFile) -> None:
    (metadata,) = [name for name in terminal_wheel.namelist() if name.endswith("/METADATA")]
    requires = [
        line.split(":", 1)[1].strip()
        for line in terminal_wheel.read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    assert any(r.startswith("pydantic") for r in requires)  # the list was read at all
    # The importer went to the development tools, and its spreadsheet reader with it.
    assert not any(r.startswith("openpyxl") for r in requires)


def test_the_devtools_wheel_holds_the_tools_and_adds_their_commands(tmp_path: Path) -> None:
    wheel = _wheel(ROOT / "devtools", tmp_path)
    files = wheel.namelist()
    for module in (
        "devtools/hq/server.py",
        "devtools/cardemu/harness.py",
        "devtools/simboard.py",
        "devtools/mosquitto.py",
        "devtools/demo/door.py",
        "devtools/demo/demo.toml",
        "devtools/demo/site.toml",
        "devtools/site.py",
    ):
        assert module in files
    assert not any(name.startswith(APPLIANCE) for name in files)
    (points,) = [name for name in files if name.endswith("entry_points.txt")]
    text = wheel.read(points).decode()
    assert "[ykt.commands]" in text
    assert "hq = devtools.hq.cli:add_hq_commands" in text
    assert "demo = devtools.demo.cli:add_demo_command" in text


def test_without_the_devtools_their_commands_say_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "entry_points", lambda group: [])
    for command in ("hq", "demo"):
        assert cli.main([command, "init", "--anything"]) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert f"ykt {command}: a development tool" in err
        assert "./dev setup" in err
