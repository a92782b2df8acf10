"""The App is built, started and stopped in named steps, in the order its module documents; a
step that fails closes what the earlier ones built; diag's hooks are given to the tap loop when
it is built, so serving diag and stopping it leave the loop as it was."""

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.interfaces import AmountEntered, CardPresented
from models.errors import ConfigError, DriverError
from terminal import app as app_module
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.config import Config
from terminal.config.diag import DiagSection
from terminal.devices import SimControls
from terminal.diag.live import LiveTerminal
from terminal.diag.protocol import DiagError, ErrorCode
from terminal.diag.server import serving
from terminal.lifecycle import StepError
from terminal.store import Store
from tests.factories import at, presented, sim_door_config
from tests.loops import settle

NOON = at(2026, 11, 23, "12:00")


def documented(label: str) -> list[str]:
    """The steps the module docstring lists after ``label:``, in its order."""
    assert app_module.__doc__ is not None
    for line in app_module.__doc__.splitlines():
        if line.strip().startswith(f"{label}:"):
            return [name.strip() for name in line.split(":", 1)[1].split(",")]
    raise AssertionError(f"terminal/app.py documents no {label!r} order")


def logged(caplog: pytest.LogCaptureFixture, verb: str) -> list[str]:
    prefix = f"{verb}: "
    return [
        message.removeprefix(prefix)
        for record in caplog.records
        if record.name == "terminal.lifecycle"
        and (message := record.getMessage()).startswith(prefix)
    ]


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Unix socket paths are short (108 bytes); pytest's own directories can be longer.
    path = Path(tempfile.mkdtemp(prefix="ykt-diag-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def door_config(tmp_path: Path, **reader: Any) -> Config:
    data = sim_door_config(tmp_path / "state", tmp_path / "diag.sock")
    data["reader"] = {"driver": "sim", **reader}
    return config_module.parse(data)


def pos_config(tmp_path: Path) -> Config:
    return config_module.parse(
        {
            "terminal": {"id": "shop-01", "site": "demo", "state_dir": str(tmp_path / "state")},
            "diag": {"socket": str(tmp_path / "diag.sock")},
            "pos": {"merchant": "shop-1", "service": "shop"},
            "reader": {"driver": "sim"},
            "keypad": {"driver": "sim"},
            "display": {"driver": "sim"},
        }
    )


@pytest.mark.parametrize(("role", "config"), [("door", door_config), ("POS", pos_config)])
def test_the_build_steps_run_in_the_documented_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, role: str, config: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="terminal.lifecycle")
    app = App(config(tmp_path), sim=SimControls(), threaded=False)
    app.close()
    assert logged(caplog, "build") == documented(role)
    assert logged(caplog, "close") == documented(role)[::-1]


def test_a_failing_step_closes_the_earlier_ones_newest_first_and_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG, logger="terminal.lifecycle")

    def no_loop(*args: object, **kwargs: object) -> None:
        raise DriverError("the loop cannot be built")

    closed: list[Store] = []
    close = Store.close

    def closing(store: Store) -> None:
        closed.append(store)
        close(store)

    monkeypatch.setattr(app_module, "TapLoop", no_loop)
    monkeypatch.setattr(Store, "close", closing)
    with pytest.raises(StepError, match="loop") as raised:
        App(door_config(tmp_path), sim=SimControls(), threaded=False)
    assert (raised.value.stage, raised.value.step) == ("build", "loop")
    assert isinstance(raised.value.__cause__, DriverError)
    order = documented("door")
    built = order[: order.index("loop")]
    assert logged(caplog, "build") == [*built, "loop"]
    assert logged(caplog, "close") == built[::-1]
    assert len(closed) == 1  # for real, not only logged


def test_a_reader_that_cannot_be_built_names_its_step(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="terminal.lifecycle")
    missing = tmp_path / "no-such-script.txt"
    with pytest.raises(StepError, match="reader") as raised:
        App(door_config(tmp_path, script=str(missing)), sim=SimControls(), threaded=False)
    assert raised.value.step == "reader"
    assert isinstance(raised.value.__cause__, ConfigError)
    assert str(missing) in str(raised.value)  # the driver's own words are kept
    order = documented("door")
    assert logged(caplog, "close") == order[: order.index("reader")][::-1]


def test_a_bug_in_a_step_keeps_its_type_and_says_the_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app_module, "RemoteCommands", broken)
    with pytest.raises(RuntimeError, match="a bug") as raised:
        App(door_config(tmp_path), sim=SimControls(), threaded=False)
    assert any("remote" in note for note in getattr(raised.value, "__notes__", []))


def test_start_and_stop_steps_run_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="terminal.lifecycle")
    app = App(door_config(tmp_path), sim=SimControls(), threaded=False)
    stop = threading.Event()
    stop.set()  # the loop returns at once: only the steps around it are looked at
    try:
        app.start_sync()
        app.run(stop)
        # The tap side stops when run() returns; the HQ link is closed with the App.
        assert logged(caplog, "stop") == documented("start")[:0:-1]
    finally:
        app.close()
    assert logged(caplog, "start") == documented("start")
    assert logged(caplog, "stop") == documented("start")[::-1]
    assert logged(caplog, "close") == documented("door")[::-1]


def test_remote_commands_get_the_door_and_the_inbox_at_build(tmp_path: Path) -> None:
    app = App(door_config(tmp_path), sim=SimControls(), threaded=False)
    try:
        assert app.remote.door is app.door_modes is not None
        assert app.remote.post == app.loop.post and app.remote.submit == app.loop.submit
    finally:
        app.close()


def journalled(app: App) -> int:
    return len(app.store.records())


def tap(app: App) -> None:
    app.sim.reader.present(presented())
    app.loop.run_until_idle()
    app.sim.reader.remove()
    app.loop.run_until_idle()


def test_diag_is_hooked_in_at_build_and_leaves_the_loop_as_it_was(
    tmp_path: Path, socket_dir: Path
) -> None:
    live = LiveTerminal()
    app = App(door_config(tmp_path), sim=SimControls(), threaded=False, hooks=live.hooks)
    try:
        assert app.loop.hooks is live.hooks
        before = dict(vars(app.loop))
        with serving(app, DiagSection(socket=socket_dir / "diag.sock"), live=live) as server:
            assert server is not None
            tap(app)
            assert journalled(app) == 1
            assert [entry["what"] for entry in live.activity()] == ["tap"]

            answers: list[dict[str, Any]] = []
            waiting = threading.Thread(target=lambda: answers.append(live.dry_run(10, None)))
            waiting.start()
            deadline = time.monotonic() + 10
            while not live.daemon()["card_dry_run_waiting"]:
                assert time.monotonic() < deadline, "the dry run never armed"
                time.sleep(0.01)
            tap(app)
            waiting.join(10)
            assert answers and answers[0]["committed"] is False
            assert answers[0]["decision"]["allowed"] is False  # a card nobody issued
            assert journalled(app) == 1  # diag had the card, not the flow
        after = vars(app.loop)
        assert after.keys() == before.keys()
        assert all(after[name] is value for name, value in before.items())
        # Detached: diag takes no card and hears nothing; the flow has the next tap.
        assert live.hooks.intercept is not None
        assert live.hooks.intercept(CardPresented(presented())) is False
        tap(app)
        assert journalled(app) == 2
        assert len(live.activity()) == 1
    finally:
        app.close()


def test_diag_mirrors_the_till_display_through_its_hook(tmp_path: Path, socket_dir: Path) -> None:
    live = LiveTerminal()
    clock = SetClock(NOON)
    config = pos_config(tmp_path)
    app = App(config, clock=clock, sim=SimControls(), threaded=False, hooks=live.hooks)
    try:
        display = app.loop.display
        with serving(app, DiagSection(socket=socket_dir / "diag.sock"), live=live):
            app.sim.keypad.press(AmountEntered(100))
            settle(app.loop, clock)
            app.sim.reader.present(presented())
            settle(app.loop, clock)
            app.sim.reader.remove()
            settle(app.loop, clock)
            seen = [entry for entry in live.activity() if entry["what"] == "screen"]
            assert seen and all(set(entry) == {"what", "headline", "tone", "at"} for entry in seen)
        assert app.loop.display is display
        heard = len(live.activity())
        app.sim.keypad.press(AmountEntered(100))
        settle(app.loop, clock)
        assert len(live.activity()) == heard
    finally:
        app.close()


def test_diag_without_its_hooks_refuses_a_dry_run_instead_of_waiting(
    tmp_path: Path, socket_dir: Path
) -> None:
    app = App(door_config(tmp_path), sim=SimControls(), threaded=False)
    try:
        with serving(app, DiagSection(socket=socket_dir / "diag.sock")) as server:
            assert server is not None
            live = server.commands.live
            assert live is not None
            with pytest.raises(DiagError) as refused:
                live.dry_run(10, None)
            assert refused.value.code == ErrorCode.NOT_AVAILABLE
            assert live.judge_number(presented().number, None)["committed"] is False
    finally:
        app.close()
