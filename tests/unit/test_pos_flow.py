"""The POS flow on simulated devices and a real SQLite store seeded with the demo site."""

import json
from datetime import datetime, timedelta

import pytest

from drivers.interfaces import (
    AmountEntered,
    Cancelled,
    CardPresented,
    CardRemoved,
    Confirmed,
    CorrectionRequested,
    PinEntered,
    Screen,
)
from drivers.sim import SimDisplay, SimKeypadControl, SimReaderControl
from models.errors import StoreError
from models.pos import PosPolicy
from models.wallet import Service
from terminal.clock import SetClock
from terminal.flows.pos import PosOutcome, PosSettings, PosState
from terminal.store import Store
from tests.factories import at, presented
from tests.fixtures import CANTEEN, DEMO_PIN, SHOP, card_number, seed
from tests.loops import pos_loop, settle

BREAKFAST = at(2026, 11, 23, "07:30")
LUNCH = at(2026, 11, 23, "12:00")


class Till:
    def __init__(
        self,
        store: Store,
        merchant: str = CANTEEN,
        service: Service = Service.MEAL,
        now: datetime = BREAKFAST,
    ) -> None:
        seed(store)
        self.store = store
        self.reader = SimReaderControl()
        self.keys = SimKeypadControl()
        self.display = SimDisplay()
        self.clock = SetClock(now)
        self.loop = pos_loop(
            store,
            PosSettings(merchant, service, PosPolicy(), prompt_timeout_s=2),
            self.clock,
            reader=self.reader,
            keys=self.keys,
            display=self.display,
        )
        self.flow = self.loop.flow
        self.outcomes: list[PosOutcome] = []
        self.flow.listeners.append(self.outcomes.append)

    def answer(self, headline: str, key: object) -> None:
        """Press ``key`` when the display shows ``headline`` (as a person would)."""

        def on_screen(screen: Screen) -> None:
            if screen.headline.startswith(headline):
                self.keys.press(key)  # type: ignore[arg-type]

        self.display.listeners.append(on_screen)

    def amount(self, fen: int) -> None:
        self.keys.press(AmountEntered(fen))
        self.settle()

    def settle(self) -> None:
        settle(self.loop, self.clock)

    def tap(self, n: int, seconds_later: int = 60) -> None:
        self.clock.advance(timedelta(seconds=seconds_later))
        self.reader.present(presented(card_number(n)))
        self.settle()
        self.reader.remove()
        self.settle()

    def last(self) -> dict[str, object]:
        return self.store.records()[-1]

    def headlines(self) -> list[str]:
        return [s.headline for s in self.display.screens]

    def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with self.store.read() as conn:
            return conn.execute(sql, args).fetchall()


@pytest.fixture
def till(store: Store) -> Till:
    return Till(store)


def test_fixed_price_breakfast_is_charged_after_commit(till: Till) -> None:
    till.tap(1)  # 张伟, gold: breakfast 3.00 from the meal subsidy
    record = till.last()
    assert (record["kind"], record["decision"], record["amount"]) == ("meal", "allow", 300)
    assert record["split"] == [{"purse": "meal_subsidy", "amount": 300}]
    paid = till.display.screens[-1]
    assert paid.headline == "支付成功 Paid"
    assert paid.lines[0] == "张*"
    assert "余额 697.00 元" in paid.lines[2]
    assert till.query("SELECT account, purse, amount FROM pending_debits") == [
        ("H001", "meal_subsidy", 300)
    ]
    assert till.query("SELECT spent FROM account_day") == [(300,)]


def test_work_meal_then_cash_within_one_period(till: Till) -> None:
    till.tap(2)  # 李娜 has two work meals
    assert till.last()["split"] == [{"purse": "work_meals", "amount": 1}]
    assert till.last()["amount"] == 0
    till.tap(2, seconds_later=120)  # a second breakfast: no subsidy, pays cash
    assert till.last()["split"] == [{"purse": "cash", "amount": 300}]


def test_entered_price_needs_the_amount_first(store: Store) -> None:
    till = Till(store, now=LUNCH)
    till.tap(3)
    assert till.headlines()[-1] == "请先输入金额"
    assert store.records() == []
    till.amount(1250)
    assert till.headlines()[-1] == "应付 12.50 元"
    till.tap(3)
    assert (till.last()["amount"], till.last()["split"]) == (
        1250,
        [{"purse": "cash", "amount": 1250}],
    )


def test_pin_above_the_free_threshold(store: Store) -> None:
    till = Till(store, SHOP, Service.SHOP)
    till.answer("请输入密码", PinEntered(DEMO_PIN))
    till.amount(12_000)  # gold: PIN above 100.00
    till.tap(1)
    assert (till.last()["decision"], till.last()["amount"]) == ("allow", 12_000)
    assert till.query("SELECT failures FROM pin_state") == [(0,)]


def test_wrong_pins_lock_the_account_and_raise_an_event(store: Store) -> None:
    till = Till(store, SHOP, Service.SHOP)
    till.answer("请输入密码", PinEntered("000000"))
    for _ in range(3):
        till.amount(12_000)
        till.tap(1)
        assert till.last()["reason"] == "pin_wrong"
    assert till.query("SELECT failures FROM pin_state") == [(3,)]
    assert till.query("SELECT type FROM events") == [("pin_locked",)]
    till.amount(12_000)
    till.tap(1)
    assert till.last()["reason"] == "pin_locked"
    till.amount(500)  # below the threshold no PIN is needed, so the lock does not matter
    till.tap(1)
    assert till.last()["decision"] == "allow"


def test_pin_prompt_cancelled_is_recorded(store: Store) -> None:
    till = Till(store, SHOP, Service.SHOP)
    till.answer("请输入密码", Cancelled())
    till.amount(12_000)
    till.tap(1)
    assert (till.last()["decision"], till.last()["reason"]) == ("deny", "cancelled_by_user")
    assert till.query("SELECT count(*) FROM pending_debits") == [(0,)]


@pytest.mark.parametrize(("answer", "charges"), [(Confirmed(), 2), (Cancelled(), 1)])
def test_duplicate_tap_asks_before_charging_twice(
    store: Store, answer: object, charges: int
) -> None:
    till = Till(store, SHOP, Service.SHOP)
    till.answer("刚刚已扣款", answer)
    till.amount(800)
    till.tap(3)
    till.amount(800)
    till.tap(3, seconds_later=3)
    allowed = [r for r in store.records() if r["decision"] == "allow"]
    assert len(allowed) == charges
    if charges == 1:
        assert till.last()["reason"] == "cancelled_by_user"


def test_spend_only_pays_cash_not_subsidy(till: Till) -> None:
    till.tap(10)  # 吴刚 left the unit; he still has a meal subsidy
    assert till.last()["split"] == [{"purse": "cash", "amount": 300}]


def test_reception_card_only_in_its_canteen(till: Till) -> None:
    till.tap(9)
    assert till.last()["reason"] == "canteen_not_allowed"
    assert till.headlines()[-1] == "此卡不能在本餐厅使用"


def test_lost_card_at_the_pos_is_refused_with_an_alert(till: Till) -> None:
    till.tap(5)
    assert till.last()["reason"] == "card_lost"
    assert till.query("SELECT type FROM events") == [("lost_card_used",)]


def test_correction_by_a_supervisor(store: Store) -> None:
    till = Till(store, now=LUNCH)
    till.amount(2500)
    till.tap(3)  # 王芳 is charged 25.00 instead of 15.00
    paid_id = till.last()["id"]
    till.keys.press(CorrectionRequested("last", 1000))
    till.reader.present(presented(card_number(1)))  # 张伟 supervises canteen-1
    till.settle()
    record = till.last()
    assert (record["kind"], record["decision"], record["amount"]) == ("correction", "allow", 1000)
    assert (record["corrects"], record["authorised_by"], record["holder_id"]) == (
        paid_id,
        "H001",
        "H003",
    )
    assert till.query("SELECT purse, amount FROM refunds") == [("cash", 1000)]
    assert till.query("SELECT spent FROM account_day WHERE account = 'H003'") == [(1500,)]


def test_correction_by_someone_else_is_refused(store: Store) -> None:
    till = Till(store, now=LUNCH)
    till.amount(2500)
    till.tap(3)
    till.reader.remove()
    till.keys.press(CorrectionRequested("last", 1000))
    till.reader.present(presented(card_number(2)))  # 李娜 is no supervisor
    till.settle()
    assert till.last()["reason"] == "correction_not_authorised"
    assert till.query("SELECT count(*) FROM refunds") == [(0,)]


def test_nothing_is_charged_when_the_journal_cannot_be_written(till: Till) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("disk full")

    till.store.commit = broken  # type: ignore[assignment, method-assign]
    till.tap(1)
    assert till.headlines()[-1] == "系统故障，未扣款"
    assert "支付成功 Paid" not in till.headlines()


def test_journal_chain_holds_over_a_busy_morning(till: Till) -> None:
    for n in (1, 2, 3, 4, 10, 1, 2):
        till.tap(n, seconds_later=30)
    assert till.store.verify_journal() is None
    records = till.store.records()
    assert all(json.dumps(r["split"]) for r in records)
    money = [r for r in records if r["decision"] == "allow"]
    assert all(
        sum(p["amount"] for p in r["split"] if p["purse"] != "work_meals") == r["amount"]
        for r in money
    )


def test_supervisor_card_arriving_with_the_correction_key_is_not_lost(store: Store) -> None:
    till = Till(store, now=LUNCH)
    till.amount(2500)
    till.tap(3)
    # The card reaches the loop first and the correction key right behind it, before the card
    # is handled: keys pressed with a tap belong to it, so the card is the supervisor's.
    till.loop.post(CardPresented(presented(card_number(1))))
    till.loop.post(CorrectionRequested("last", 1000))
    till.settle()
    assert (till.last()["kind"], till.last()["decision"]) == ("correction", "allow")
    assert till.last()["authorised_by"] == "H001"


def test_an_unanswered_pin_prompt_runs_out_on_the_clock_not_in_a_wait(store: Store) -> None:
    till = Till(store, SHOP, Service.SHOP)
    till.amount(12_000)
    till.reader.present(presented(card_number(1)))
    for _ in range(5):
        till.loop.turn(0)
    assert till.flow.state is PosState.PIN and till.store.records() == []
    till.clock.advance(timedelta(seconds=1.9))
    till.loop.turn(0)
    assert till.flow.state is PosState.PIN  # 2 s prompt: not yet
    till.clock.advance(timedelta(seconds=0.2))
    till.loop.turn(0)
    assert (till.last()["decision"], till.last()["reason"]) == ("deny", "cancelled_by_user")
    assert till.flow.state is PosState.IDLE


def test_a_card_tapped_during_a_prompt_waits_for_it(store: Store) -> None:
    till = Till(store, SHOP, Service.SHOP)
    till.answer("请输入密码", PinEntered(DEMO_PIN))
    till.amount(12_000)
    till.loop.post(CardPresented(presented(card_number(1))))
    till.loop.post(CardRemoved())
    till.loop.post(CardPresented(presented(card_number(3))))  # the next customer, too early
    till.settle()
    # The PIN'd payment first; then the next card, for which no amount has been entered yet.
    assert [(r["card"], r["decision"]) for r in store.records()] == [(card_number(1), "allow")]
    assert till.headlines()[-2:] == ["支付成功 Paid", "请先输入金额"]
