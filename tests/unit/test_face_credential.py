"""A recognised face is judged on its holder's current card: no way round a card's status."""

from datetime import date

import pytest

from models import CardStatus, DoorRequest, FaceCredential, HolderStatus, Reason, decide
from models.cards import held_key
from tests.factories import DOOR, MONDAY_9, NUMBER, card, holder, presented, view

FACE = FaceCredential("H1", 962)


def face_request(credential: FaceCredential = FACE) -> DoorRequest:
    return DoorRequest(credential, DOOR, "in")


def test_a_recognised_holder_with_an_active_card_passes() -> None:
    decision = decide(face_request(), view(), MONDAY_9)
    assert decision.allowed and decision.reason is Reason.ALLOWED
    assert (decision.holder_id, decision.card_number) == ("H1", NUMBER)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (CardStatus.LOST, Reason.CARD_LOST),
        (CardStatus.FROZEN, Reason.CARD_FROZEN),
        (CardStatus.CANCELLED, Reason.CARD_CANCELLED),
        (CardStatus.SPEND_ONLY, Reason.CARD_SPEND_ONLY),
    ],
)
def test_a_face_does_not_pass_where_the_holders_card_would_not(
    status: CardStatus, reason: Reason
) -> None:
    decision = decide(face_request(), view(card(status)), MONDAY_9)
    assert not decision.allowed and decision.reason is reason
    # Nobody presented the lost card, so a face raises no lost-card security event.
    assert decision.alert is None


def test_an_expired_card_or_holder_period_stops_the_face_too() -> None:
    expired = card(valid_until=date(2026, 11, 1))
    assert decide(face_request(), view(expired), MONDAY_9).reason is Reason.CARD_EXPIRED
    left = holder(status=HolderStatus.INACTIVE)
    assert not decide(face_request(), view(holder_=left), MONDAY_9).allowed


def test_a_view_carrying_an_older_card_than_the_holders_newest_is_void() -> None:
    decision = decide(face_request(), view(card(issue_seq=1), newest_issue_seq=2), MONDAY_9)
    assert decision.reason is Reason.CARD_REPLACED


def test_a_face_for_a_holder_the_view_does_not_know_is_refused() -> None:
    stranger = decide(face_request(FaceCredential("H9", 990)), view(), MONDAY_9)
    assert not stranger.allowed and stranger.reason is Reason.HOLDER_UNKNOWN


def test_outside_the_access_hours_a_face_is_refused_like_a_card() -> None:
    sunday = MONDAY_9.replace(day=22)
    assert decide(face_request(), view(), sunday).allowed is False


def test_the_same_face_and_the_same_card_are_each_one_presentation() -> None:
    assert held_key(FACE) == held_key(FaceCredential("H1", 900)) == "face:H1"
    assert held_key(presented()) == NUMBER
    assert held_key(FACE) != held_key(FaceCredential("H2", 962))
