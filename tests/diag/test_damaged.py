"""`ykt diag` on a damaged database says so, with its exit code, and never a traceback."""

from pathlib import Path

import pytest

from terminal.diag.protocol import Exit
from tests.diag.conftest import run_diag, run_json
from tests.unit.test_store_damage import damaged_site, journal_root, overwrite

CONFIG = """
[terminal]
id = "dmg-gate-01"
site = "demo-centre"
state_dir = "{state}"
[door]
id = "east-gate"
[reader]
driver = "sim"
[gate]
driver = "sim"
"""


@pytest.fixture
def damaged(tmp_path: Path) -> list[str]:
    state = tmp_path / "state"
    state.mkdir()
    path, _ = damaged_site(state)
    root, _ = journal_root(path)
    overwrite(path, root, 8, 192)
    config = tmp_path / "gate.toml"
    config.write_text(CONFIG.format(state=state))
    return ["--socket", str(tmp_path / "none.sock"), "--config", str(config)]


def test_status_names_the_damage(damaged: list[str]) -> None:
    code, out, err = run_diag("status", *damaged)
    assert code == Exit.FAILED and "Traceback" not in err
    assert "damaged" in out
    _, result = run_json("status", *damaged)
    assert "damaged" in result["database"]["error"]


@pytest.mark.parametrize("argv", [("tx",), ("sync",)])  # both read the journal
def test_readers_of_the_journal_fail_with_a_clear_error(
    damaged: list[str], argv: tuple[str, ...]
) -> None:
    code, _, err = run_diag(*argv, *damaged)
    assert code == Exit.FAILED
    assert "Traceback" not in err and "damaged" in err


def test_db_check_reports_what_sqlite_found(damaged: list[str]) -> None:
    code, result = run_json("db", "check", *damaged)
    assert code == Exit.FAILED
    assert result["integrity"] != ["ok"]
    assert any("integrity_check" in p for p in result["problems"])
