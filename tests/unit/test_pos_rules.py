"""One test per POS rule of RULES.md; each fails if its rule is removed."""

from datetime import date, timedelta

import pytest

from models import Alert, CardStatus, HolderStatus, Need, Reason, decide
from models.cards import Genuineness, PresentedCard
from models.pos import Limits, Merchant, PosPolicy, PosRequest
from models.wallet import Payment, Purse, PurseState
from tests.factories import (
    BARBER,
    CANTEEN,
    MONDAY_8,
    MONDAY_12,
    NUMBER,
    SHOP,
    at,
    card,
    pos_holder,
    pos_request,
    pos_view,
    purses,
)


def test_fixed_price_breakfast_by_card_class() -> None:
    decision = decide(pos_request(), pos_view(), MONDAY_8)
    assert decision.allowed
    assert decision.payment == Payment(500, ((Purse.CASH, 500),))


def test_class_without_its_own_price_pays_the_default() -> None:
    decision = decide(pos_request(), pos_view(holder=pos_holder(card_class="blue")), MONDAY_8)
    assert decision.payment == Payment(800, ((Purse.CASH, 800),))


def test_entered_price_at_lunch() -> None:
    decision = decide(pos_request(1250), pos_view(), MONDAY_12)
    assert decision.payment == Payment(1250, ((Purse.CASH, 1250),))


@pytest.mark.parametrize("amount", [0, -5, 1_000_001])
def test_entered_amount_must_be_sensible(amount: int) -> None:
    decision = decide(pos_request(amount), pos_view(), MONDAY_12)
    assert (decision.reason, decision.need) == (Reason.AMOUNT_INVALID, None)


def test_a_cashier_priced_sale_without_the_amount_asks_for_it_and_is_not_a_decision() -> None:
    decision = decide(pos_request(None), pos_view(), MONDAY_12)
    assert (decision.allowed, decision.need, decision.final) == (False, Need.AMOUNT, False)
    assert decision.reason is Reason.AMOUNT_REQUIRED
    # A lost card is refused (and raises its alarm) whether or not an amount was typed.
    lost = decide(pos_request(None), pos_view(card=card(CardStatus.LOST)), MONDAY_12)
    assert (lost.reason, lost.final) == (Reason.CARD_LOST, True)


def test_outside_meal_periods_the_canteen_does_not_charge() -> None:
    decision = decide(pos_request(), pos_view(), at(2026, 11, 23, "10:00"))
    assert decision.reason is Reason.OUTSIDE_MEAL_PERIOD


def test_period_without_pricing_is_refused_not_guessed() -> None:
    no_lunch_price = Merchant("canteen-2", CANTEEN.service, CANTEEN.meal_periods, ())
    assert decide(pos_request(900), pos_view(no_lunch_price), MONDAY_12).reason is Reason.NO_PRICE


def test_shop_and_barber_take_the_entered_amount_at_any_hour() -> None:
    late = at(2026, 11, 23, "22:00")
    assert decide(pos_request(300), pos_view(SHOP), late).payment == Payment(
        300, ((Purse.CASH, 300),)
    )
    assert decide(pos_request(300), pos_view(BARBER), late).allowed


def test_service_must_be_enabled_for_the_holder() -> None:
    meal_only = pos_holder(services=frozenset({"meal"}))
    assert decide(pos_request(300), pos_view(SHOP, holder=meal_only), MONDAY_12).reason is (
        Reason.SERVICE_NOT_ALLOWED
    )


def test_official_reception_card_only_in_named_canteens() -> None:
    reception = pos_holder(
        card_class="blue", services=frozenset({"meal"}), canteens=frozenset({"canteen-9"})
    )
    assert decide(pos_request(), pos_view(holder=reception), MONDAY_8).reason is (
        Reason.CANTEEN_NOT_ALLOWED
    )
    allowed_here = pos_holder(
        card_class="blue", services=frozenset({"meal"}), canteens=frozenset({"canteen-1"})
    )
    assert decide(pos_request(), pos_view(holder=allowed_here), MONDAY_8).allowed
    assert decide(pos_request(100), pos_view(SHOP, holder=allowed_here), MONDAY_8).reason is (
        Reason.SERVICE_NOT_ALLOWED
    )


def test_matching_subsidy_pays_first_then_cash() -> None:
    decision = decide(pos_request(1200), pos_view(purses=purses(cash=5000, meal=1000)), MONDAY_12)
    assert decision.payment == Payment(1200, ((Purse.MEAL_SUBSIDY, 1000), (Purse.CASH, 200)))


def test_subsidy_of_another_service_is_not_touched() -> None:
    decision = decide(pos_request(1200), pos_view(BARBER, purses=purses(meal=5000)), MONDAY_12)
    assert decision.payment == Payment(1200, ((Purse.CASH, 1200),))
    shop = decide(
        pos_request(100), pos_view(SHOP, purses=purses(meal=5000, barber=5000)), MONDAY_12
    )
    assert shop.payment == Payment(100, ((Purse.CASH, 100),))


def test_barber_subsidy_pays_barber() -> None:
    decision = decide(pos_request(1500), pos_view(BARBER, purses=purses(barber=2000)), MONDAY_12)
    assert decision.payment == Payment(1500, ((Purse.BARBER_SUBSIDY, 1500),))


def test_expired_subsidy_is_not_spent() -> None:
    expired = (
        PurseState(Purse.CASH, 5000),
        PurseState(Purse.MEAL_SUBSIDY, 5000, 0, date(2026, 11, 22)),
    )
    decision = decide(pos_request(1200), pos_view(purses=expired), MONDAY_12)
    assert decision.payment == Payment(1200, ((Purse.CASH, 1200),))


def test_insufficient_balance() -> None:
    decision = decide(pos_request(1200), pos_view(purses=purses(cash=1000, meal=100)), MONDAY_12)
    assert decision.reason is Reason.INSUFFICIENT_BALANCE


def test_pending_debits_are_not_spent_twice() -> None:
    pending = (PurseState(Purse.CASH, 1000, pending=900),)
    assert decide(pos_request(200), pos_view(purses=pending), MONDAY_12).reason is (
        Reason.INSUFFICIENT_BALANCE
    )


@pytest.mark.parametrize("who", ["card", "holder"])
def test_spend_only_pays_from_cash_never_subsidy(who: str) -> None:
    fields: dict[str, object] = (
        {"card": card(CardStatus.SPEND_ONLY)}
        if who == "card"
        else {"holder": pos_holder(status=HolderStatus.SPEND_ONLY)}
    )
    view = pos_view(purses=purses(cash=5000, meal=5000, work_meals=3), **fields)
    assert decide(pos_request(1200), view, MONDAY_12).payment == Payment(
        1200, ((Purse.CASH, 1200),)
    )
    assert decide(pos_request(), view, MONDAY_8).payment == Payment(500, ((Purse.CASH, 500),))


def test_spend_only_ends_at_its_deadline() -> None:
    holder = pos_holder(status=HolderStatus.SPEND_ONLY, spend_only_until=date(2026, 11, 22))
    assert decide(pos_request(100), pos_view(SHOP, holder=holder), MONDAY_12).reason is (
        Reason.CARD_SPEND_ONLY_ENDED
    )


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (CardStatus.LOST, Reason.CARD_LOST),
        (CardStatus.REPLACED, Reason.CARD_REPLACED),
        (CardStatus.CANCELLED, Reason.CARD_CANCELLED),
        (CardStatus.FROZEN, Reason.CARD_FROZEN),
        (CardStatus.EXPIRED, Reason.CARD_EXPIRED),
    ],
)
def test_void_cards_never_pay(status: CardStatus, reason: Reason) -> None:
    assert decide(pos_request(100), pos_view(SHOP, card=card(status)), MONDAY_12).reason is reason


def test_cloned_card_never_pays() -> None:
    clone = PresentedCard(NUMBER, Genuineness.NOT_GENUINE, 1)
    assert (
        decide(PosRequest(clone, 100), pos_view(SHOP), MONDAY_12).reason is Reason.CARD_NOT_GENUINE
    )


def test_work_meal_covers_a_fixed_price_meal() -> None:
    decision = decide(pos_request(), pos_view(purses=purses(work_meals=2)), MONDAY_8)
    assert decision.payment == Payment(0, ((Purse.WORK_MEALS, 1),))


def test_work_meal_does_not_cover_an_entered_amount() -> None:
    decision = decide(pos_request(1200), pos_view(purses=purses(work_meals=2)), MONDAY_12)
    assert decision.payment == Payment(1200, ((Purse.CASH, 1200),))


def test_one_subsidised_meal_per_meal_period() -> None:
    earlier = (at(2026, 11, 23, "07:10"),)
    view = pos_view(purses=purses(work_meals=5, meal=5000), subsidised_meals_today=earlier)
    assert decide(pos_request(), view, MONDAY_8).payment == Payment(500, ((Purse.CASH, 500),))
    # Lunch is another period: subsidy again.
    lunch = decide(pos_request(1200), view, MONDAY_12)
    assert lunch.payment == Payment(1200, ((Purse.MEAL_SUBSIDY, 1200),))


def test_duplicate_tap_asks_for_confirmation() -> None:
    view = pos_view(SHOP, last_charge_here=MONDAY_12 - timedelta(seconds=4))
    asking = decide(pos_request(300), view, MONDAY_12)
    assert (asking.reason, asking.need) == (Reason.DUPLICATE_TAP, Need.DUPLICATE_CONFIRM)
    assert decide(pos_request(300, confirmed_duplicate=True), view, MONDAY_12).allowed
    declined = decide(pos_request(300, declined=Need.DUPLICATE_CONFIRM), view, MONDAY_12)
    assert (declined.reason, declined.final) == (Reason.CANCELLED_BY_USER, True)
    later = pos_view(SHOP, last_charge_here=MONDAY_12 - timedelta(seconds=11))
    assert decide(pos_request(300), later, MONDAY_12).allowed
    # A clock set back since the last charge (stamped "in the future") is no way round the
    # guard: the journal says that charge came first, so it is taken as just now.
    jumped = pos_view(SHOP, last_charge_here=MONDAY_12 + timedelta(hours=1))
    assert decide(pos_request(300), jumped, MONDAY_12).need is Need.DUPLICATE_CONFIRM


def test_per_transaction_limit() -> None:
    view = pos_view(SHOP, limits=Limits(per_tx=5000))
    assert decide(pos_request(5001), view, MONDAY_12).reason is Reason.OVER_TX_LIMIT
    assert decide(pos_request(5000), view, MONDAY_12).allowed


def test_per_day_limit() -> None:
    view = pos_view(SHOP, limits=Limits(per_day=10_000), spent_today=9_000)
    assert decide(pos_request(1001), view, MONDAY_12).reason is Reason.OVER_DAY_LIMIT
    assert decide(pos_request(1000), view, MONDAY_12).allowed


def test_pin_above_the_password_free_threshold() -> None:
    view = pos_view(SHOP, limits=Limits(pin_free=2000))
    free = decide(pos_request(2000), view, MONDAY_12)
    assert free.allowed and free.pin_attempt is None
    asking = decide(pos_request(2001), view, MONDAY_12)
    assert (asking.reason, asking.need) == (Reason.PIN_REQUIRED, Need.PIN)
    assert asking.payment == Payment(2001, ((Purse.CASH, 2001),))  # what the prompt is for
    wrong = decide(pos_request(2001, pin_ok=False), view, MONDAY_12)
    assert (wrong.reason, wrong.pin_attempt, wrong.alert, wrong.final) == (
        Reason.PIN_WRONG, False, None, True,
    )  # fmt: skip
    right = decide(pos_request(2001, pin_ok=True), view, MONDAY_12)
    assert right.allowed and right.pin_attempt is True


def test_a_declined_pin_prompt_is_a_cancelled_payment() -> None:
    view = pos_view(SHOP, limits=Limits(pin_free=2000))
    decision = decide(pos_request(2001, declined=Need.PIN), view, MONDAY_12)
    assert (decision.reason, decision.final, decision.pin_attempt) == (
        Reason.CANCELLED_BY_USER, True, None,
    )  # fmt: skip
    assert decision.detail == "at the pin_required prompt"


def test_pin_locked_after_too_many_failures() -> None:
    view = pos_view(
        SHOP, limits=Limits(pin_free=2000), pin_failures=3, policy=PosPolicy(pin_max_failures=3)
    )
    assert decide(pos_request(2001, pin_ok=True), view, MONDAY_12).reason is Reason.PIN_LOCKED
    assert decide(pos_request(100), view, MONDAY_12).allowed  # small payments need no PIN


def test_the_wrong_pin_that_locks_the_pin_raises_the_event() -> None:
    policy = PosPolicy(pin_max_failures=3)
    for failures, alert in ((0, None), (1, None), (2, Alert.PIN_LOCKED)):
        view = pos_view(SHOP, limits=Limits(pin_free=2000), pin_failures=failures, policy=policy)
        wrong = decide(pos_request(2001, pin_ok=False), view, MONDAY_12)
        assert (wrong.reason, wrong.alert) == (Reason.PIN_WRONG, alert)
    assert wrong.event == (("failures", 3),)


def test_pin_is_not_asked_for_a_payment_that_would_fail() -> None:
    view = pos_view(SHOP, limits=Limits(pin_free=100), purses=purses(cash=50))
    assert decide(pos_request(200), view, MONDAY_12).reason is Reason.INSUFFICIENT_BALANCE


def test_offline_caps_apply_only_in_degraded_mode() -> None:
    limits = Limits(offline_per_card_day=3000)
    policy = PosPolicy(offline_per_terminal=50_000)
    online = pos_view(SHOP, limits=limits, policy=policy, pending_card_today=2500)
    assert decide(pos_request(1000), online, MONDAY_12).allowed
    degraded = pos_view(SHOP, limits=limits, policy=policy, pending_card_today=2500, degraded=True)
    assert decide(pos_request(1000), degraded, MONDAY_12).reason is Reason.OFFLINE_LIMIT_CARD
    assert decide(pos_request(500), degraded, MONDAY_12).allowed
    full = pos_view(SHOP, limits=limits, policy=policy, pending_terminal=49_800, degraded=True)
    assert decide(pos_request(500), full, MONDAY_12).reason is Reason.OFFLINE_LIMIT_TERMINAL


def test_a_uid_mode_read_is_journalled_as_uid_not_card() -> None:
    by_uid = PresentedCard(NUMBER, Genuineness.UID_ONLY, 1)
    decision = decide(PosRequest(by_uid, 100), pos_view(SHOP), MONDAY_12)
    assert decision.allowed and decision.credential == "uid"
