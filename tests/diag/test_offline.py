"""With the daemon stopped, the read-only commands read the database themselves."""

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from terminal.diag.protocol import Exit
from tests.diag.conftest import DiagDaemon, run_diag, run_json
from tests.fixtures import card_number

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiagDaemon]:
    daemon = DiagDaemon(tmp_path_factory.mktemp("stopped"))
    try:
        daemon.send(f"tap {card_number(1)} seq=1")
        daemon.send(f"tap {card_number(5)} seq=1")
        daemon.wait_journal(3)
        assert daemon.stop() == 0
        assert not daemon.socket.exists()
        yield daemon
    finally:
        daemon.close()


def offline(daemon: DiagDaemon, *argv: str) -> list[str]:
    return [*argv, "--socket", str(daemon.socket), "--config", str(daemon.config)]


READ_ONLY = [
    (("status",), Exit.FAILED, "not running"),
    (("tx",), Exit.OK, "card_lost"),
    (("events",), Exit.OK, "lost_card_used"),
    (("db", "check"), Exit.OK, "chain ok"),
    (("config",), Exit.OK, "door.id"),
    (("identity",), Exit.NOT_AVAILABLE, "no terminal key yet"),
    (("sync",), Exit.OK, "not enabled"),
    (("readers",), Exit.OK, "simulated reader"),
]


@pytest.mark.parametrize(
    ("argv", "expected", "shown"), READ_ONLY, ids=[" ".join(c[0]) for c in READ_ONLY]
)
def test_read_only_commands_work_without_the_daemon(
    stopped: DiagDaemon, argv: tuple[str, ...], expected: Exit, shown: str
) -> None:
    code, out, err = run_diag(*offline(stopped, *argv))
    assert code == expected, err
    assert shown in out
    assert "reading the database directly" in err
    json_code, result = run_json(*offline(stopped, *argv))
    assert json_code == expected
    assert result["source"] == "database"
    assert card_number(5) not in out + json.dumps(result)


def test_status_says_the_daemon_is_down(stopped: DiagDaemon) -> None:
    _, status = run_json(*offline(stopped, "status"))
    assert status["daemon"] == {"running": False}
    assert status["mode"] == "stopped"
    assert status["problems"][0].startswith("the daemon is not running")
    assert status["database"]["counts"]["journal"] == 3


def test_live_commands_say_the_daemon_is_down(stopped: DiagDaemon) -> None:
    for argv in (
        ("card", "--timeout", "1"),
        ("gate", "test"),
        ("sync", "resync"),
        ("camera",),
        ("face",),
    ):
        code, _, err = run_diag(*offline(stopped, *argv))
        assert code == Exit.UNREACHABLE, err
        assert "daemon" in err
        json_code, result = run_json(*offline(stopped, *argv))
        assert json_code == Exit.UNREACHABLE and result["error"]["code"] == "unreachable"


def test_watch_and_bundle_without_the_daemon(stopped: DiagDaemon, tmp_path: Path) -> None:
    code, out, _ = run_diag(*offline(stopped, "watch", "--count", "1"))
    assert code == Exit.FAILED and "not running" in out
    bundle = tmp_path / "b.tar.gz"
    code, out, err = run_diag(*offline(stopped, "bundle", "--out", str(bundle)))
    assert code == Exit.FAILED, err  # the bundle was written; the terminal is down
    with tarfile.open(bundle) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        events = tar.extractfile("events.json").read().decode()  # type: ignore[union-attr]
    assert manifest["source"] == "database"
    assert card_number(5) not in events and "3601************0005" in events


def test_missing_config_is_a_usage_error(stopped: DiagDaemon, tmp_path: Path) -> None:
    code, _, err = run_diag(
        "tx", "--socket", str(stopped.socket), "--config", str(tmp_path / "none.toml")
    )
    assert code == Exit.USAGE
    assert "no such file" in err
