"""A recognised face is judged on its holder's standing (RULES.md "Credentials and standing"): a
lost or replaced card voids that card, not the face; expiry, cancellation, spend-only and a frozen
balance are the holder's and stop the face where they stop the card."""

from datetime import date

import pytest

from models import CardStatus, DoorRequest, FaceCredential, HolderStatus, Need, Reason, decide
from models.cards import held_key
from models.decision import Alert
from models.pos import PosRequest
from models.wallet import Payment, Purse
from tests.factories import (
    DOOR,
    MONDAY_8,
    MONDAY_9,
    NUMBER,
    card,
    holder,
    pos_holder,
    pos_view,
    presented,
    view,
)

FACE = FaceCredential("H1", 962)


def face_request(credential: FaceCredential = FACE) -> DoorRequest:
    return DoorRequest(credential, DOOR, "in")


def test_a_recognised_holder_with_an_active_card_passes() -> None:
    decision = decide(face_request(), view(), MONDAY_9)
    assert decision.allowed and decision.reason is Reason.ALLOWED
    assert (decision.holder_id, decision.card_number) == ("H1", NUMBER)
    assert (decision.credential, decision.face_score) == ("face", 962)


@pytest.mark.parametrize("status", [CardStatus.LOST, CardStatus.REPLACED])
def test_a_lost_or_replaced_card_voids_the_card_not_the_face(status: CardStatus) -> None:
    decision = decide(face_request(), view(card(status)), MONDAY_9)
    assert decision.allowed and decision.reason is Reason.ALLOWED
    # The void card is not what passed: the record names no card.
    assert (decision.holder_id, decision.card_number, decision.alert) == ("H1", None, None)
    # The card itself, presented, is still refused with its security event.
    tapped = decide(DoorRequest(presented(), DOOR, "in"), view(card(status)), MONDAY_9)
    assert not tapped.allowed and tapped.alert is not None


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (CardStatus.CANCELLED, Reason.CARD_CANCELLED),
        (CardStatus.EXPIRED, Reason.CARD_EXPIRED),
        (CardStatus.SPEND_ONLY, Reason.CARD_SPEND_ONLY),
    ],
)
def test_the_holders_standing_stops_the_face_at_the_door(
    status: CardStatus, reason: Reason
) -> None:
    decision = decide(face_request(), view(card(status)), MONDAY_9)
    assert not decision.allowed and decision.reason is reason
    # Nobody presented a card, so a face raises no card security event.
    assert decision.alert is None


def test_a_frozen_balance_stops_face_payments_but_not_doors() -> None:
    frozen = card(CardStatus.FROZEN)
    assert decide(face_request(), view(frozen), MONDAY_9).allowed
    paying = decide(PosRequest(FACE, pay_confirmed=True), pos_view(card=frozen), MONDAY_8)
    assert (paying.allowed, paying.reason) == (False, Reason.CARD_FROZEN)


def test_an_expired_card_or_holder_period_stops_the_face_too() -> None:
    expired = card(valid_until=date(2026, 11, 1))
    assert decide(face_request(), view(expired), MONDAY_9).reason is Reason.CARD_EXPIRED
    left = holder(status=HolderStatus.INACTIVE)
    assert not decide(face_request(), view(holder_=left), MONDAY_9).allowed
    period = holder(valid_until=date(2026, 11, 1))
    assert decide(face_request(), view(holder_=period), MONDAY_9).reason is Reason.HOLDER_INACTIVE


def test_an_older_card_than_the_holders_newest_is_void_and_the_face_stands_alone() -> None:
    # The old card says "expired" but it is not the holder's card any more: it decides nothing.
    old = card(CardStatus.EXPIRED, issue_seq=1)
    decision = decide(face_request(), view(old, newest_issue_seq=2), MONDAY_9)
    assert decision.allowed and decision.card_number is None


def test_a_holder_with_no_card_is_judged_on_standing_alone() -> None:
    standing = view()
    no_card = type(standing)(
        view_seq=standing.view_seq, holder=standing.holder, groups=standing.groups
    )
    decision = decide(face_request(), no_card, MONDAY_9)
    assert decision.allowed and decision.card_number is None
    spend_only = type(standing)(view_seq=1, holder=holder(status=HolderStatus.SPEND_ONLY))
    assert decide(face_request(), spend_only, MONDAY_9).reason is Reason.CARD_SPEND_ONLY


def test_a_face_for_a_holder_the_view_does_not_know_is_refused() -> None:
    stranger = decide(face_request(FaceCredential("H9", 990)), view(), MONDAY_9)
    assert not stranger.allowed and stranger.reason is Reason.HOLDER_UNKNOWN


def test_a_face_that_failed_liveness_is_refused_with_a_spoof_event() -> None:
    spoof = FaceCredential("H1", 962, live=False, threshold_milli=951)
    decision = decide(face_request(spoof), view(), MONDAY_9)
    assert (decision.allowed, decision.reason, decision.alert) == (
        False, Reason.FACE_NOT_LIVE, Alert.FACE_SPOOF,
    )  # fmt: skip
    assert (decision.credential, decision.face_score) == ("face", 962)
    assert decision.detail == "face not_live, score 0.962 >= 0.951"
    paying = decide(PosRequest(spoof), pos_view(), MONDAY_8)
    assert (paying.reason, paying.alert, paying.need) == (
        Reason.FACE_NOT_LIVE, Alert.FACE_SPOOF, None,
    )  # fmt: skip


def test_outside_the_access_hours_a_face_is_refused_like_a_card() -> None:
    sunday = MONDAY_9.replace(day=22)
    assert decide(face_request(), view(), sunday).allowed is False


def test_face_pay_asks_the_customer_to_confirm_before_any_other_prompt() -> None:
    asked = decide(PosRequest(FACE), pos_view(), MONDAY_8)
    assert (asked.need, asked.reason, asked.final) == (
        Need.PAY_CONFIRM, Reason.PAY_CONFIRM_REQUIRED, False,
    )  # fmt: skip
    assert asked.payment == Payment(500, ((Purse.CASH, 500),))  # shown on the display
    paid = decide(PosRequest(FACE, pay_confirmed=True), pos_view(), MONDAY_8)
    assert paid.allowed and (paid.credential, paid.face_score) == ("face", 962)
    declined = decide(PosRequest(FACE, declined=Need.PAY_CONFIRM), pos_view(), MONDAY_8)
    assert (declined.reason, declined.final) == (Reason.CANCELLED_BY_USER, True)


def test_face_pay_is_refused_at_once_when_no_answer_could_make_it_pass() -> None:
    broke = pos_view(holder=pos_holder(services=frozenset({"shop"})))
    decision = decide(PosRequest(FACE), broke, MONDAY_8)
    assert (decision.reason, decision.need) == (Reason.SERVICE_NOT_ALLOWED, None)


def test_the_same_face_and_the_same_card_are_each_one_presentation() -> None:
    assert held_key(FACE) == held_key(FaceCredential("H1", 900)) == "face:H1"
    assert held_key(presented()) == NUMBER
    assert held_key(FACE) != held_key(FaceCredential("H2", 962))
