from dataclasses import replace
from datetime import timedelta

import pytest

from models import Card, CardStatus, Reason, decide
from models.correction import CorrectionRequest, CorrectionView, OriginalPayment
from models.decision import Alert, Decision
from models.door import AntiPassback, DoorRequest, Passage
from models.wallet import Payment, Purse
from tests.factories import (
    CANTEEN,
    MONDAY_9,
    MONDAY_12,
    holder,
    presented,
    view,
)

SUPERVISOR_CARD = "36010020269999999999"
PAID = OriginalPayment(
    "tx-1", "H1", "36010020260000000001", 1500, ((Purse.MEAL_SUBSIDY, 1000), (Purse.CASH, 500))
)


def correction(
    amount: int,
    *,
    supervisor: str = "SUP",
    original: OriginalPayment | None = PAID,
    refunded: tuple[tuple[Purse, int], ...] = (),
    status: CardStatus = CardStatus.ACTIVE,
) -> Decision:
    sup_card = Card(SUPERVISOR_CARD, supervisor, 1, "red", status)
    cview = CorrectionView(
        view_seq=3,
        merchant=CANTEEN,
        supervisor_card=sup_card,
        supervisor_holder=holder(id=supervisor),
        supervisor_newest_issue_seq=1,
        original=original,
        refunded=refunded,
    )
    return decide(CorrectionRequest(presented(SUPERVISOR_CARD), "tx-1", amount), cview, MONDAY_12)


def test_correction_gives_back_cash_first() -> None:
    decision = correction(700)
    assert decision.allowed
    assert decision.holder_id == "H1"
    assert decision.payment == Payment(700, ((Purse.CASH, 500), (Purse.MEAL_SUBSIDY, 200)))


def test_full_correction_restores_exactly_what_was_paid() -> None:
    decision = correction(1500)
    assert decision.payment is not None
    assert sorted(decision.payment.split) == sorted(PAID.split)


def test_corrections_never_exceed_the_payment_in_total() -> None:
    done = ((Purse.CASH, 500), (Purse.MEAL_SUBSIDY, 200))
    assert correction(801, refunded=done).reason is Reason.CORRECTION_EXCEEDS
    assert correction(800, refunded=done).payment == Payment(800, ((Purse.MEAL_SUBSIDY, 800),))
    assert correction(0).reason is Reason.CORRECTION_EXCEEDS


def test_only_a_supervisor_of_this_merchant_may_correct() -> None:
    assert correction(100, supervisor="CASHIER").reason is Reason.CORRECTION_NOT_AUTHORISED


def test_supervisor_card_must_itself_be_valid() -> None:
    assert correction(100, status=CardStatus.LOST).reason is Reason.CARD_LOST


def test_unknown_original() -> None:
    assert correction(100, original=None).reason is Reason.CORRECTION_NOT_FOUND


def test_work_meal_correction_gives_back_the_meal_once() -> None:
    meal = OriginalPayment("tx-1", "H1", PAID.card, 0, ((Purse.WORK_MEALS, 1),))
    assert correction(0, original=meal).payment == Payment(0, ((Purse.WORK_MEALS, 1),))
    again = correction(0, original=meal, refunded=((Purse.WORK_MEALS, 1),))
    assert again.reason is Reason.CORRECTION_EXCEEDS


# --- anti-passback ---------------------------------------------------------------------------


def door_with_last(direction: str, minutes_ago: int, mode: str) -> Decision:
    last = Passage(direction, MONDAY_9 - timedelta(minutes=minutes_ago))
    v = replace(view(), anti_passback=AntiPassback(mode, 60), last_passage=last)
    return decide(DoorRequest(presented(), "east-gate", "in"), v, MONDAY_9)


def test_hard_anti_passback_refuses_a_second_entry() -> None:
    decision = door_with_last("in", 10, "hard")
    assert decision.reason is Reason.ANTI_PASSBACK
    assert decision.alert is Alert.ANTI_PASSBACK


def test_soft_anti_passback_admits_and_reports() -> None:
    decision = door_with_last("in", 10, "soft")
    assert decision.allowed
    assert decision.alert is Alert.ANTI_PASSBACK


def test_a_clock_set_back_does_not_reopen_anti_passback() -> None:
    # The last entry is stamped an hour after "now": the clock was set back since it.
    decision = door_with_last("in", -60, "hard")
    assert decision.reason is Reason.ANTI_PASSBACK
    assert "clock is behind the journal" in decision.detail


@pytest.mark.parametrize(
    ("direction", "minutes", "mode"),
    [("out", 10, "hard"), ("in", 61, "hard"), ("in", 10, "off")],
)
def test_anti_passback_does_not_apply(direction: str, minutes: int, mode: str) -> None:
    decision = door_with_last(direction, minutes, mode)
    assert decision.allowed
    assert decision.alert is None
