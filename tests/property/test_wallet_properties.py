"""Random days at a canteen and a shop: taps, top-ups, subsidy grants, corrections, card status
changes, HQ echoing debits back, and the clock moving on. Invariants checked after every step.

The "store" here is a small in-memory model of what the SQLite store does for the POS view: it is
the simplest thing that lets hypothesis drive ``decide`` through long, realistic sequences.
"""

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from models import CardStatus, HolderStatus, Need, Reason, decide
from models.correction import CorrectionRequest, CorrectionView, OriginalPayment
from models.pos import Limits, PosPolicy, PosRequest, PosView
from models.wallet import MONEY_PURSES, Purse, PurseState
from tests.factories import CANTEEN, SHOP, at, card, pos_holder, presented

START = at(2026, 11, 23, "06:30")
LIMITS = Limits(per_tx=5000, per_day=6000, pin_free=2500, offline_per_card_day=3000)
POLICY = PosPolicy(duplicate_window_s=10, pin_max_failures=3, offline_per_terminal=5000)
VOID = {CardStatus.LOST, CardStatus.REPLACED, CardStatus.CANCELLED, CardStatus.EXPIRED}
SUBSIDIES = {Purse.MEAL_SUBSIDY, Purse.BARBER_SUBSIDY, Purse.WORK_MEALS}


@dataclass
class Paid:
    tx_id: str
    at: datetime
    amount: int
    split: tuple[tuple[Purse, int], ...]
    refunded: dict[Purse, int] = field(default_factory=dict)


@dataclass
class World:
    now: datetime = START
    balance: dict[Purse, int] = field(default_factory=lambda: {p: 0 for p in Purse})
    pending: dict[Purse, int] = field(default_factory=lambda: {p: 0 for p in Purse})
    unechoed: list[tuple[datetime, tuple[tuple[Purse, int], ...]]] = field(default_factory=list)
    status: CardStatus = CardStatus.ACTIVE
    holder_status: HolderStatus = HolderStatus.ACTIVE
    degraded: bool = False
    payments: list[Paid] = field(default_factory=list)
    last_charge: datetime | None = None
    limits: Limits = LIMITS
    policy: PosPolicy = POLICY

    def purses(self) -> tuple[PurseState, ...]:
        return tuple(PurseState(p, self.balance[p], self.pending[p]) for p in Purse)

    def spent_today(self) -> int:
        return sum(p.amount for p in self.payments if p.at.date() == self.now.date())

    def pending_today(self) -> int:
        return sum(
            sum(a for purse, a in split if purse in MONEY_PURSES)
            for when, split in self.unechoed
            if when.date() == self.now.date()
        )

    def pos_view(self, merchant: object) -> PosView:
        return PosView(
            view_seq=1,
            merchant=merchant,  # type: ignore[arg-type]
            policy=self.policy,
            card=card(self.status),
            holder=pos_holder(status=self.holder_status),
            newest_issue_seq=1,
            limits=self.limits,
            purses=self.purses(),
            spent_today=self.spent_today(),
            subsidised_meals_today=tuple(
                p.at
                for p in self.payments
                if p.at.date() == self.now.date() and any(s in SUBSIDIES for s, _ in p.split)
            ),
            last_charge_here=self.last_charge,
            pending_card_today=self.pending_today(),
            pending_terminal=sum(self.pending[p] for p in MONEY_PURSES),
            degraded=self.degraded,
        )


amounts = st.integers(1, 6000) | st.sampled_from([300, 500, 1200, 2000])
taps = st.tuples(
    st.sampled_from(["tap_canteen", "tap_shop"]),
    amounts,
    st.booleans(),
    st.none() | st.booleans(),
    st.sampled_from([0, 5, 30, 300, 1800]),  # seconds since the step before
)
ops = st.lists(
    st.one_of(
        taps,
        taps,
        taps,
        st.tuples(st.just("topup"), st.integers(1, 20_000)),
        st.tuples(
            st.just("grant"),
            st.sampled_from([Purse.MEAL_SUBSIDY, Purse.BARBER_SUBSIDY]),
            st.integers(1, 5000),
        ),
        st.tuples(st.just("grant_meals"), st.integers(1, 3)),
        st.tuples(st.just("correct"), st.integers(0, 20), st.integers(0, 6000)),
        st.tuples(st.just("echo")),
        st.tuples(st.just("advance"), st.integers(1, 90) | st.integers(91, 1440)),
        st.tuples(st.just("status"), st.sampled_from([*CardStatus, *[CardStatus.ACTIVE] * 6])),
        st.tuples(st.just("leave")),
        st.tuples(st.just("link"), st.booleans()),
    ),
    min_size=10,
    max_size=80,
)


def pay(world: World, merchant: object, amount: int, confirm: bool, pin: bool | None) -> None:
    request = PosRequest(presented(), amount, pin, confirm)
    view = world.pos_view(merchant)
    decision = decide(request, view, world.now)
    assert decision == decide(request, view, world.now)  # deterministic
    if not decision.allowed:
        if decision.need is None:
            assert decision.payment is None
        else:
            # A question for the till, never a record; a PIN prompt shows what it is for.
            assert not decision.final
            assert decision.need in (Need.PIN, Need.DUPLICATE_CONFIRM)
            assert (decision.payment is not None) == (decision.need is Need.PIN)
        return
    payment = decision.payment
    assert payment is not None
    # Never a void card, never a payment that needed a PIN without one.
    assert world.status not in VOID and world.status is not CardStatus.FROZEN
    limits, policy = world.limits, world.policy
    if limits.pin_free is not None and payment.amount > limits.pin_free:
        assert pin is True
    # The parts pay exactly the amount, from purses that can afford it.
    assert sum(a for _, a in payment.money_split) == payment.amount
    for purse, part in payment.split:
        assert part > 0
        assert world.balance[purse] - world.pending[purse] >= part
        world.pending[purse] += part
    # Spend-only holders never touch a subsidy.
    if world.status is CardStatus.SPEND_ONLY or world.holder_status is HolderStatus.SPEND_ONLY:
        assert not any(purse in SUBSIDIES for purse, _ in payment.split)
    world.unechoed.append((world.now, payment.split))
    world.payments.append(
        Paid(f"tx-{len(world.payments)}", world.now, payment.amount, payment.split)
    )
    world.last_charge = world.now
    # Caps.
    if limits.per_day is not None:
        assert world.spent_today() <= limits.per_day
    if limits.per_tx is not None:
        assert payment.amount <= limits.per_tx
    if world.degraded and limits.offline_per_card_day is not None:
        assert world.pending_today() <= limits.offline_per_card_day
    if world.degraded and policy.offline_per_terminal is not None:
        assert sum(world.pending[p] for p in MONEY_PURSES) <= policy.offline_per_terminal


def correct(world: World, index: int, amount: int) -> None:
    if not world.payments:
        return
    paid = world.payments[index % len(world.payments)]
    original = OriginalPayment(paid.tx_id, "H1", card().number, paid.amount, paid.split)
    sup = replace(card(), number="36019999999999999999", holder_id="SUP")
    view = CorrectionView(
        1, CANTEEN, sup, pos_holder(id="SUP"), 1, original, tuple(paid.refunded.items())
    )
    decision = decide(CorrectionRequest(presented(sup.number), paid.tx_id, amount), view, world.now)
    if not decision.allowed:
        return
    assert decision.payment is not None
    for purse, part in decision.payment.split:
        paid.refunded[purse] = paid.refunded.get(purse, 0) + part
        world.balance[purse] += part  # HQ posts the credit
    # In total a payment is never refunded beyond what it took from each purse.
    taken = defaultdict(int, {p: a for p, a in paid.split})
    assert all(paid.refunded[p] <= taken[p] for p in paid.refunded)


@given(ops)
def test_wallet_invariants_over_random_days(steps: list[tuple[object, ...]]) -> None:
    world = World()
    world.balance[Purse.CASH] = 30_000
    world.balance[Purse.MEAL_SUBSIDY] = 3000
    world.balance[Purse.WORK_MEALS] = 2
    for step in steps:
        kind = step[0]
        if kind in ("tap_canteen", "tap_shop"):
            world.now += timedelta(seconds=step[4])  # type: ignore[arg-type]
            merchant = CANTEEN if kind == "tap_canteen" else SHOP
            pay(world, merchant, step[1], step[2], step[3])  # type: ignore[arg-type]
        elif kind == "topup":
            world.balance[Purse.CASH] += step[1]  # type: ignore[operator]
        elif kind == "grant":
            world.balance[step[1]] += step[2]  # type: ignore[index, operator]
        elif kind == "grant_meals":
            world.balance[Purse.WORK_MEALS] += step[1]  # type: ignore[operator]
        elif kind == "correct":
            correct(world, step[1], step[2])  # type: ignore[arg-type]
        elif kind == "echo":  # HQ's ledger entries for our debits arrive
            for _, split in world.unechoed:
                for purse, part in split:
                    world.balance[purse] -= part
                    world.pending[purse] -= part
            world.unechoed.clear()
        elif kind == "advance":
            world.now += timedelta(minutes=step[1])  # type: ignore[operator]
        elif kind == "status":
            world.status = step[1]  # type: ignore[assignment]
        elif kind == "leave":
            world.holder_status = HolderStatus.SPEND_ONLY
        elif kind == "link":
            world.degraded = bool(step[1])
        for purse in Purse:
            assert world.balance[purse] - world.pending[purse] >= 0, purse
    # At most one subsidised meal per meal period and day.
    subsidised = [
        p
        for p in world.payments
        if any(s in SUBSIDIES for s, _ in p.split) and CANTEEN.period_at(p.at) is not None
    ]
    per_period = defaultdict(int)
    for p in subsidised:
        period = CANTEEN.period_at(p.at)
        assert period is not None
        per_period[(p.at.date(), period.name)] += 1
    assert all(count <= 1 for count in per_period.values()), per_period


@given(st.integers(1, 5000), st.integers(0, 5000), st.integers(0, 5000))
def test_a_full_correction_restores_every_purse_exactly(amount: int, meal: int, cash: int) -> None:
    world = World(now=at(2026, 11, 23, "12:00"))
    world.balance[Purse.MEAL_SUBSIDY] = meal
    world.balance[Purse.CASH] = cash
    before = dict(world.balance)
    pay(world, CANTEEN, amount, False, True)
    if not world.payments:
        assert decide(
            PosRequest(presented(), amount, True), world.pos_view(CANTEEN), world.now
        ).reason in {Reason.INSUFFICIENT_BALANCE, Reason.OVER_TX_LIMIT}
        return
    # HQ echoes the debit, then the supervisor gives all of it back.
    for purse, part in world.unechoed[0][1]:
        world.balance[purse] -= part
        world.pending[purse] -= part
    correct(world, 0, world.payments[0].amount)
    assert world.balance == before


shop_taps = st.lists(
    st.tuples(amounts, st.sampled_from([11, 60, 600, 3600, 5 * 3600])), min_size=1, max_size=40
)


def run_shop(world: World, taps: list[tuple[int, int]]) -> None:
    for amount, gap in taps:
        world.now += timedelta(seconds=gap)
        pay(world, SHOP, amount, True, True)


@given(shop_taps)
def test_daily_limit_holds_over_a_day_of_payments(taps: list[tuple[int, int]]) -> None:
    world = World(limits=Limits(per_day=6000))
    world.balance[Purse.CASH] = 10**7
    run_shop(world, taps)
    per_day: dict[object, int] = defaultdict(int)
    for paid in world.payments:
        per_day[paid.at.date()] += paid.amount
    assert all(total <= 6000 for total in per_day.values())


@given(shop_taps, st.booleans())
def test_offline_exposure_caps_hold_while_hq_is_silent(
    taps: list[tuple[int, int]], per_card: bool
) -> None:
    limits = Limits(offline_per_card_day=3000) if per_card else Limits()
    world = World(limits=limits, policy=PosPolicy(offline_per_terminal=5000), degraded=True)
    world.balance[Purse.CASH] = 10**7
    run_shop(world, taps)  # nothing is ever echoed: all of it stays pending
    assert sum(world.pending[p] for p in MONEY_PURSES) <= 5000
    if per_card:
        per_day: dict[object, int] = defaultdict(int)
        for paid in world.payments:
            per_day[paid.at.date()] += paid.amount
        assert all(total <= 3000 for total in per_day.values())


@given(
    st.lists(st.sampled_from([11, 120, 900, 1800, 3 * 3600]), min_size=1, max_size=30),
    st.integers(0, 3),
    st.integers(0, 3000),
)
def test_at_most_one_subsidised_meal_per_meal_period(
    gaps: list[int], work_meals: int, subsidy: int
) -> None:
    world = World(limits=Limits())
    world.balance.update(
        {Purse.CASH: 10**6, Purse.WORK_MEALS: work_meals, Purse.MEAL_SUBSIDY: subsidy}
    )
    for gap in gaps:
        world.now += timedelta(seconds=gap)
        pay(world, CANTEEN, 700, True, True)
    seen: dict[tuple[object, str], int] = defaultdict(int)
    for paid in world.payments:
        period = CANTEEN.period_at(paid.at)
        if period is not None and any(p in SUBSIDIES for p, _ in paid.split):
            seen[(paid.at.date(), period.name)] += 1
    assert all(count <= 1 for count in seen.values()), seen
