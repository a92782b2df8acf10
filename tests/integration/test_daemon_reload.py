"""``ykt run``'s life cycle around a config reload: the daemon restarts its parts in-process with
the re-read file, and an invalid file never gets that far."""

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.engine import CommandRefused
from terminal import config as config_module
from terminal import daemon
from terminal.app import App

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def write_config(path: Path, state: Path, door: str) -> None:
    text = (ROOT / "config" / "demo.toml").read_text("utf-8")
    text = text.replace('state_dir = "/var/lib/ykt-terminal-demo"', f'state_dir = "{state}"')
    text = text.replace('id = "east-gate"', f'id = "{door}"')
    path.write_text(text + f'\n[diag]\nsocket = "{state / "diag.sock"}"\n', encoding="utf-8")


@pytest.fixture
def own_signal_handlers() -> Iterator[None]:
    """daemon.run installs SIGTERM/SIGINT handlers; give pytest its own back afterwards."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_reload_restarts_the_parts_with_the_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, own_signal_handlers: None
) -> None:
    path = tmp_path / "terminal.toml"
    write_config(path, tmp_path / "state", "east-gate")
    started: list[App] = []
    first_up, second_up = threading.Event(), threading.Event()

    class RecordingApp(App):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)
            (first_up if len(started) == 1 else second_up).set()

    monkeypatch.setattr(daemon, "App", RecordingApp)
    answers: list[object] = []

    def hq() -> None:
        # What HQ's reload_config does from the sync thread while the daemon serves; then the
        # operator stops the daemon as systemd would.
        first_up.wait(20)
        path.write_text("[terminal]\nbogus = 1\n", encoding="utf-8")
        try:
            started[0].remote.handle("reload_config", {})
        except CommandRefused as refused:
            answers.append(str(refused))
        write_config(path, tmp_path / "state", "west-gate")
        answers.append(started[0].remote.handle("reload_config", {}))
        second_up.wait(20)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=hq, daemon=True)
    sender.start()
    assert daemon.run(config_module.load(path), path) == 0
    sender.join(5)
    assert "nothing changed" in str(answers[0]) and "bogus" in str(answers[0])
    assert answers[1] == {"valid": True, "reloading": True}
    assert [a.config.door.id for a in started if a.config.door] == ["east-gate", "west-gate"]
