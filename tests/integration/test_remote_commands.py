"""HQ's commands carried out by a running gate terminal: the reference HQ tool sends them over a
real mosquitto, the terminal executes them on its tap loop and replies."""

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devtools.hq.cli import main as hq_main
from devtools.hq.db import HqDb
from devtools.hq.keyadmin import make_root
from devtools.hq.office import Office
from devtools.hq.server import HqServer, ServeOptions
from models.cards import Genuineness, PresentedCard
from sync.envelope import public_key_b64
from sync.service import SyncService
from terminal import config as config_module
from terminal.app import App, BundleFactory
from terminal.clock import SystemClock
from terminal.config import Config
from terminal.devices import SimControls
from terminal.flows.door import MODE_STATE, DoorMode, TapOutcome
from terminal.loop import LoopHooks
from tests.sync.broker import Broker, wait_for
from tests.sync.messages import SITE, TID, card_number, holder

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HOLDERS = ("H1", "H2")
# On the real clock (HQ signs its head in real time): a group whose window never closes.
ALWAYS = {
    "id": "always",
    "doors": ["east-gate"],
    "windows": [{"days": list(range(1, 9)), "from": "00:00", "to": "24:00"}],
    "calendar": "",
}


def build_hq(root: Path, port: int) -> None:
    HqDb.create(root, SITE, "ykt/v1", f"127.0.0.1:{port}").close()
    db = HqDb(root)
    try:
        make_root(db, root / "hq-root.key")
        office = Office(db)
        office.upsert_group(ALWAYS)
        for n, holder_id in enumerate(HOLDERS, start=1):
            office.upsert_holder(holder(holder_id, groups=["always"]))
            office.issue_card(holder_id, card_number(n))
    finally:
        db.close()


def gate_config(state_dir: Path, port: int, db: HqDb) -> Config:
    signer = db.signer()
    return config_module.parse(
        {
            "terminal": {"id": TID, "site": SITE, "timezone": "Asia/Shanghai",
                         "state_dir": str(state_dir)},
            "door": {"id": "east-gate", "direction": "in", "open_seconds": 1.5},
            "reader": {"driver": "sim"},
            "gate": {"driver": "sim", "passage": "pass", "passage_delay_seconds": 0.2},
            "sync": {
                "enabled": True,
                "broker_host": "127.0.0.1",
                "broker_port": port,
                "hq_keys": {signer.kid: public_key_b64(signer.public_key)},
                "hq_root_key": db.meta("root_pub"),
                "reconnect_max_seconds": 1,
                "resend_seconds": 2,
                "resync_after_seconds": 1,
            },
        }
    )  # fmt: skip


@dataclass
class Running:
    app: App
    hq: list[str]
    next_config: Path
    told: list[object]

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
        self.app.sim.reader.present(PresentedCard(card_number(1), Genuineness.GENUINE, 1))
        assert wait_for(
            lambda: any(isinstance(t, TapOutcome) for t in self.told[before:]), timeout=10
        )
        self.app.sim.reader.remove()
        return next(t for t in self.told[before:] if isinstance(t, TapOutcome))


Start = Callable[..., Running]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """Starts the gate (once per test) with what the daemon would give it at build time."""
    stack: list[Callable[[], None]] = []

    def started(bundle: BundleFactory | None = None) -> Running:
        (tmp_path / "broker").mkdir()
        broker = Broker(tmp_path / "broker")
        broker.start()
        stack.append(broker.stop)
        build_hq(tmp_path / "hq", broker.port)
        db = HqDb(tmp_path / "hq")
        stack.append(db.close)
        config = gate_config(tmp_path / "terminal", broker.port, db)
        next_config = tmp_path / "next.toml"
        told: list[object] = []
        app = App(
            config,
            clock=SystemClock(),
            sim=SimControls(),
            config_path=next_config,
            bundle=bundle,
            hooks=LoopHooks(told=told.append),
        )
        stack.append(app.close)
        assert app.sync is not None
        Office(db).enroll(config.terminal.id, app.sync.public_key)
        server = HqServer(HqDb(tmp_path / "hq"), ServeOptions(port=broker.port))
        server.start()
        stack.append(server.db.close)
        stack.append(server.stop)
        stop = threading.Event()
        app.start_sync()
        loop = threading.Thread(target=app.run, args=(stop,), name="door-loop")
        loop.start()
        stack.append(lambda: loop.join(10))
        stack.append(stop.set)
        assert wait_for(lambda: app.store.counts()["cards"] == len(HOLDERS), timeout=20)
        return Running(app, ["--dir", str(tmp_path / "hq")], next_config, told)

    try:
        yield started
    finally:
        while stack:
            stack.pop()()


@pytest.fixture
def running(start: Start) -> Running:
    return start()


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


def test_diag_bundle_is_refused_without_a_provider(
    running: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    code, reply = running.cmd("diag_bundle", capsys=capsys)
    assert code == 1 and "not available" in reply["error"]


def test_diag_bundle_is_answered_by_the_provider_given_at_build(
    start: Start, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[tuple[str, bool]] = []

    def bundle(config: Config, sync: SyncService | None) -> Mapping[str, Any]:
        asked.append((config.terminal.id, sync is not None))
        return {"level": "ok"}

    running = start(bundle)
    code, reply = running.cmd("diag_bundle", capsys=capsys)
    assert code == 0 and reply["result"] == {"bundle": {"level": "ok"}}
    assert asked == [(TID, True)]
