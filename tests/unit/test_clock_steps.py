"""A wall clock set back (an operator, a bad RTC, a rogue time server) must not reopen what the
journal already says happened: money is held to the offline caps while the clock stands behind
the newest record, unless a fresh head from HQ vouches for the clock."""

from datetime import timedelta
from pathlib import Path

from drivers.interfaces import AmountEntered
from models.reasons import Reason
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.devices import SimControls
from terminal.store import Store
from tests.factories import at, presented
from tests.fixtures import card_number, seed
from tests.loops import settle

NOON = at(2026, 11, 23, "12:00")


def shop(tmp_path: Path) -> App:
    state = tmp_path / "state"
    store = Store.open(state / "terminal.db")
    seed(store)
    store.close()
    config = config_module.parse(
        {
            "terminal": {"id": "shop-clock-01", "site": "demo-centre", "state_dir": str(state)},
            "diag": {"socket": str(tmp_path / "diag.sock")},
            "pos": {"merchant": "shop-1", "service": "shop", "offline_limit_fen": 1500},
            "reader": {"driver": "sim"},
            "keypad": {"driver": "sim"},
            "display": {"driver": "sim"},
        }
    )
    return App(config, clock=SetClock(NOON), sim=SimControls(), threaded=False)


def pay(app: App, card: int, fen: int) -> dict[str, object]:
    clock = app.clock
    assert isinstance(clock, SetClock)
    app.sim.keypad.press(AmountEntered(fen))
    settle(app.loop, clock)
    app.sim.reader.present(presented(card_number(card)))
    settle(app.loop, clock)
    app.sim.reader.remove()
    settle(app.loop, clock)
    return app.store.records()[-1]


def test_a_clock_set_back_holds_money_to_the_offline_caps(tmp_path: Path) -> None:
    app = shop(tmp_path)
    try:
        assert pay(app, 1, 1200)["decision"] == "allow"
        clock = app.clock
        assert isinstance(clock, SetClock)
        assert not app.clock_behind_journal()
        clock.set(NOON - timedelta(hours=1))
        assert app.clock_behind_journal()
        # 12.00 + 12.00 would pass the terminal's 15.00 offline cap: the step must not hide it.
        second = pay(app, 2, 1200)
        assert (second["decision"], second["reason"]) == ("deny", Reason.OFFLINE_LIMIT_TERMINAL)
        clock.set(NOON + timedelta(minutes=2))  # put right: past the newest record again
        assert not app.clock_behind_journal()
    finally:
        app.close()
