"""A payment through ``decide()`` with the till answering what it asks: every question comes at
most once, every conversation ends in a final decision, and the answers are what let it pass."""

from dataclasses import replace
from datetime import timedelta

from hypothesis import event, given
from hypothesis import strategies as st

from models import CardStatus, FaceCredential, Need, Reason, decide
from models.pos import Limits, PosPolicy, PosRequest
from models.wallet import Purse
from tests.factories import CANTEEN, MONDAY_8, MONDAY_12, SHOP, card, pos_request, pos_view, purses

answers = st.sampled_from(["yes", "no", "decline"])


@st.composite
def sales(draw: st.DrawFn) -> tuple[PosRequest, object, object]:
    merchant = draw(st.sampled_from([CANTEEN, SHOP]))
    now = draw(st.sampled_from([MONDAY_8, MONDAY_12]))
    view = pos_view(
        merchant,
        card=card(draw(st.sampled_from([CardStatus.ACTIVE] * 4 + list(CardStatus)))),
        limits=Limits(pin_free=draw(st.none() | st.integers(0, 3000))),
        purses=purses(cash=draw(st.integers(0, 5000)), meal=draw(st.integers(0, 2000))),
        pin_failures=draw(st.integers(0, 3)),
        policy=PosPolicy(pin_max_failures=3),
        last_charge_here=draw(st.none() | st.just(now - timedelta(seconds=3))),
    )
    credential = draw(
        st.sampled_from([pos_request().credential, FaceCredential("H1", 970, threshold_milli=951)])
    )
    amount = draw(st.none() | st.integers(1, 4000))
    return PosRequest(credential, amount), view, now


@given(sales(), st.lists(answers, min_size=3, max_size=3))
def test_the_conversation_ends_and_its_answers_decide_it(
    sale: tuple[PosRequest, object, object], replies: list[str]
) -> None:
    request, view, now = sale
    asked: list[Need] = []
    decision = decide(request, view, now)  # type: ignore[arg-type]
    for reply in replies:
        need = decision.need
        if need is None or need is Need.AMOUNT:
            break
        assert need not in asked  # never the same question twice
        asked.append(need)
        if reply == "decline":
            request = replace(request, declined=need)
        elif need is Need.PIN:
            request = replace(request, pin_ok=reply == "yes")
        elif need is Need.DUPLICATE_CONFIRM:
            request = replace(request, confirmed_duplicate=reply == "yes")
            if reply == "no":
                request = replace(request, declined=need)
        else:
            request = replace(request, pay_confirmed=reply == "yes")
            if reply == "no":
                request = replace(request, declined=need)
        decision = decide(request, view, now)  # type: ignore[arg-type]
    event(f"asked {[str(n) for n in asked]} -> {decision.reason}")
    if decision.need is Need.AMOUNT:
        assert request.entered_amount is None and not asked
        return
    assert decision.final, (asked, decision)
    if request.declined is not None and decision.reason is Reason.CANCELLED_BY_USER:
        assert not decision.allowed and decision.payment is None
    if decision.allowed:
        payment = decision.payment
        assert payment is not None
        assert request.declined is None
        if isinstance(request.credential, FaceCredential):
            assert Need.PAY_CONFIRM in asked and request.pay_confirmed
            assert asked[0] is Need.PAY_CONFIRM  # before any PIN or duplicate prompt
        limits = view.limits  # type: ignore[attr-defined]
        money = payment.amount if payment.split != ((Purse.WORK_MEALS, 1),) else 0
        if limits.pin_free is not None and money > limits.pin_free:
            assert request.pin_ok is True and decision.pin_attempt is True
        if Need.DUPLICATE_CONFIRM in asked:
            assert request.confirmed_duplicate
    if decision.reason is Reason.PIN_WRONG:
        assert decision.pin_attempt is False and request.pin_ok is False
