"""What a crash leaves unsaid is said at the next start: a gate opening with no passage outcome
is journalled as unknown, and the cashier sees the last payment so nobody charges twice."""

from datetime import timedelta
from pathlib import Path

from models.decision import Decision, GateAction
from models.reasons import Reason
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.devices import SimControls
from terminal.flows import record
from terminal.store import Store
from tests.factories import at, presented
from tests.fixtures import card_number, seed
from tests.unit.test_clock_steps import NOON, pay, shop

MONDAY_9 = at(2026, 11, 23, "09:00")


def gate_app(state: Path) -> App:
    config = config_module.parse(
        {
            "terminal": {"id": "gate-restart-01", "site": "demo-centre", "state_dir": str(state)},
            "diag": {"socket": str(state / "diag.sock")},
            "door": {"id": "east-gate", "direction": "in", "open_seconds": 1},
            "reader": {"driver": "sim"},
            "gate": {"driver": "sim", "passage": "pass", "passage_delay_seconds": 0},
        }
    )
    return App(config, clock=SetClock(MONDAY_9), sim=SimControls(), threaded=False)


def test_an_opening_a_crash_cut_short_is_journalled_as_unknown_once(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = Store.open(state / "terminal.db")
    seed(store)
    # What kill -9 leaves between the commit and the gate's report: the admission only.
    admitted = Decision(
        True, Reason.ALLOWED, "H001", card_number(1), credential="card", gate=GateAction.OPEN
    )
    place = record.Place(MONDAY_9, 0, store.view_seq, "east-gate", "in")
    commit = record.door_commit(admitted, place)
    admission = store.commit(commit.draft, commit.event, commit.effects)
    assert [r["id"] for r in store.awaiting_passages()] == [admission.id]
    store.close()
    for _ in range(2):  # and again: settled once
        app = gate_app(state)
        app.close()
    store = Store.open(state / "terminal.db")
    try:
        passages = [r for r in store.records() if r["kind"] == "passage"]
        assert [(p["ref"], p["reason"], p.get("used")) for p in passages] == [
            (admission.id, "passage_unknown", None)
        ]
        assert store.awaiting_passages() == []
        assert store.verify_journal() is None
    finally:
        store.close()


def test_an_opening_seen_through_owes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = Store.open(state / "terminal.db")
    seed(store)
    store.close()
    app = gate_app(state)
    try:
        app.sim.reader.present(presented(card_number(1)))
        app.loop.run_until_idle()
        app.sim.reader.remove()
        for _ in range(50):
            app.loop.turn(0.01)
            app.loop.poll_devices()
        kinds = [(r["kind"], r["reason"]) for r in app.store.records()]
        assert kinds == [("door", "allowed"), ("passage", "passage_confirmed")]
        assert app.store.awaiting_passages() == []
    finally:
        app.close()


def test_the_cashier_sees_the_last_payment_after_a_restart(tmp_path: Path) -> None:
    app = shop(tmp_path)
    try:
        assert pay(app, 1, 1200)["decision"] == "allow"
    finally:
        app.close()
    config = app.config
    for minutes, shown in ((2, True), (11, False)):
        restarted = App(config, clock=SetClock(NOON + timedelta(minutes=minutes)), threaded=False)
        try:
            screens = restarted.sim.display.screens
            notice = [s for s in screens if s.headline.startswith("上笔已扣款")]
            assert bool(notice) is shown, screens
            if shown:
                assert notice[0].lines == ("12.00 元  12:00", "不要重复扣款 Do not charge again")
        finally:
            restarted.close()
