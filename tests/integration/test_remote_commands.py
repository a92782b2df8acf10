"""HQ's commands carried out by a running gate terminal: the reference HQ tool sends them over a
real mosquitto, the terminal executes them on its tap loop and replies."""

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from devtools.demo.door import demo_config
from devtools.demo.sync import PEOPLE, build_hq, sync_config
from devtools.hq.cli import main as hq_main
from devtools.hq.db import HqDb
from devtools.hq.office import Office
from devtools.hq.server import HqServer, ServeOptions
from models.cards import Genuineness, PresentedCard
from sync.envelope import public_key_b64
from terminal.app import App
from terminal.clock import SystemClock
from terminal.devices import SimControls
from terminal.flows.door import MODE_STATE, DoorMode, FlowNotice, TapOutcome
from tests.fixtures import SITE_TZ
from tests.sync.broker import Broker, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Running:
    app: App
    hq: list[str]
    next_config: Path
    told: list[TapOutcome | FlowNotice]

    @property
    def tid(self) -> str:
        return self.app.config.terminal.id

    def cmd(self, name: str, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
        capsys.readouterr()
        code = hq_main([*self.hq, "cmd", self.tid, name, *args, "--wait", "10"])
        out = capsys.readouterr().out
        start = out.find("{")
        return code, (json.loads(out[start:]) if start >= 0 else {"raw": out})

    def tap(self) -> TapOutcome:
        before = len(self.told)
        person = PEOPLE[0]
        self.app.sim.reader.present(PresentedCard(person.number, Genuineness.GENUINE, 1))
        assert wait_for(
            lambda: any(isinstance(t, TapOutcome) for t in self.told[before:]), timeout=10
        )
        self.app.sim.reader.remove()
        return next(t for t in self.told[before:] if isinstance(t, TapOutcome))


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker")
    broker.start()
    base = demo_config(tmp_path / "state")
    build_hq(tmp_path / "hq", base.terminal.site, broker.port, datetime.now(SITE_TZ))
    db = HqDb(tmp_path / "hq")
    signer = db.signer()
    config = sync_config(
        base,
        tmp_path / "terminal",
        broker.port,
        {signer.kid: public_key_b64(signer.public_key)},
        db.meta("root_pub"),
    )
    next_config = tmp_path / "next.toml"
    app = App(config, clock=SystemClock(), sim=SimControls(), config_path=next_config)
    assert app.sync is not None and app.door_flow is not None
    Office(db).enroll(config.terminal.id, app.sync.public_key)
    server = HqServer(HqDb(tmp_path / "hq"), ServeOptions(port=broker.port))
    server.start()
    told: list[TapOutcome | FlowNotice] = []
    app.door_flow.listeners.append(told.append)
    stop = threading.Event()
    app.start_sync()
    loop = threading.Thread(target=app.run, args=(stop,), name="door-loop")
    loop.start()
    try:
        assert wait_for(lambda: app.store.counts()["cards"] == len(PEOPLE), timeout=20)
        yield Running(app, ["--dir", str(tmp_path / "hq")], next_config, told)
    finally:
        stop.set()
        loop.join(10)
        app.close()
        server.stop()
        server.db.close()
        db.close()
        broker.stop()


def test_lockdown_and_evacuation_ordered_by_hq(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    assert running.tap().decision.allowed

    code, reply = running.cmd("set_mode", "--arg", "mode=locked", "--arg", "reason=drill",
                              capsys=capsys)  # fmt: skip
    assert code == 0 and reply["result"] == {"mode": "locked"}, reply
    locked = running.tap()
    assert not locked.decision.allowed and locked.decision.reason == "door_locked"
    assert running.app.sim.gate.mode == "locked"
    # A remote open does not get round a lockdown.
    code, reply = running.cmd("open", "--arg", "reason=test", capsys=capsys)
    assert code == 1 and "locked" in reply["error"]

    code, reply = running.cmd("set_mode", "--arg", "mode=free", capsys=capsys)
    assert code == 0 and reply["result"] == {"mode": "free"}
    free = running.tap()
    assert free.decision.allowed and free.passage is None and free.passage_reason == "free_passage"
    assert running.app.store.state(MODE_STATE) == DoorMode.FREE

    code, reply = running.cmd("set_mode", "--arg", "mode=party", capsys=capsys)
    assert code == 1 and "mode must be one of" in reply["error"]
    with running.app.store.read() as conn:
        modes = [json.loads(d)["mode"] for (d,) in conn.execute(
            "SELECT detail FROM events WHERE type = 'door_mode' ORDER BY id")]  # fmt: skip
    assert modes == ["locked", "free"]


def test_reload_config_refuses_an_invalid_file_and_accepts_a_valid_one(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    running.next_config.write_text('[terminal]\nid = "gate"\nbogus = 1\n', encoding="utf-8")
    code, reply = running.cmd("reload_config", capsys=capsys)
    assert code == 1 and "nothing changed" in reply["error"] and "bogus" in reply["error"]
    assert not running.app.remote.reload_due

    demo_toml = (ROOT / "config" / "demo.toml").read_text("utf-8")
    running.next_config.write_text(demo_toml, encoding="utf-8")
    code, reply = running.cmd("reload_config", capsys=capsys)
    assert code == 0 and reply["result"] == {"valid": True, "reloading": True}
    assert wait_for(lambda: running.app.remote.reload_due, timeout=5)


def test_diag_bundle_is_refused_without_a_provider_and_answered_with_one(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    code, reply = running.cmd("diag_bundle", capsys=capsys)
    assert code == 1 and "not available" in reply["error"]
    running.app.remote.bundle = lambda: {"level": "ok"}
    code, reply = running.cmd("diag_bundle", capsys=capsys)
    assert code == 0 and reply["result"] == {"bundle": {"level": "ok"}}
