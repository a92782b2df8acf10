"""A verified electronic-card code is judged like a face, on its holder's standing (RULES.md
"Credentials and standing"), and a code that failed verification is refused with its reason;
the journal says ``qr`` either way."""

from datetime import date

import pytest

from models import CardStatus, DoorRequest, FacePolicy, HolderStatus, Need, Reason, decide
from models.face import FaceEvidence, FaceOutcome
from models.pos import Limits, PosRequest
from models.qr import QrCredential, QrFault
from models.wallet import Payment, Purse
from tests.factories import DOOR, MONDAY_8, MONDAY_9, NUMBER, SHOP, card, holder, pos_view, view

CODE = QrCredential("H1", "q-1", "AAAAAAAAAAAAAAAA", 0, 30, 35)


def door(credential: QrCredential | QrFault = CODE, **fields: object) -> DoorRequest:
    return DoorRequest(credential, DOOR, "in", **fields)  # type: ignore[arg-type]


def test_a_code_of_a_holder_in_good_standing_opens_the_door() -> None:
    decision = decide(door(), view(), MONDAY_9)
    assert decision.allowed and decision.reason is Reason.ALLOWED
    assert (decision.holder_id, decision.card_number, decision.credential) == ("H1", NUMBER, "qr")


@pytest.mark.parametrize("status", [CardStatus.LOST, CardStatus.REPLACED])
def test_a_lost_card_does_not_lock_its_holder_out(status: CardStatus) -> None:
    decision = decide(door(), view(card(status)), MONDAY_9)
    assert decision.allowed
    assert (decision.card_number, decision.alert, decision.credential) == (None, None, "qr")


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (CardStatus.CANCELLED, Reason.CARD_CANCELLED),
        (CardStatus.EXPIRED, Reason.CARD_EXPIRED),
        (CardStatus.SPEND_ONLY, Reason.CARD_SPEND_ONLY),
    ],
)
def test_the_holders_standing_stops_the_code(status: CardStatus, reason: Reason) -> None:
    decision = decide(door(), view(card(status)), MONDAY_9)
    assert (decision.allowed, decision.reason, decision.alert) == (False, reason, None)
    assert decision.credential == "qr"


def test_an_ended_registration_or_an_unknown_holder_stops_the_code() -> None:
    ended = holder(valid_until=date(2026, 11, 1))
    assert decide(door(), view(holder_=ended), MONDAY_9).reason is Reason.HOLDER_INACTIVE
    stranger = QrCredential("H9", "q-1", "AAAAAAAAAAAAAAAA", 0, 30, 35)
    assert decide(door(stranger), view(), MONDAY_9).reason is Reason.HOLDER_UNKNOWN
    left = holder(status=HolderStatus.INACTIVE)
    assert decide(door(), view(holder_=left), MONDAY_9).reason is Reason.HOLDER_INACTIVE


@pytest.mark.parametrize(
    "reason", [Reason.QR_INVALID, Reason.QR_EXPIRED, Reason.QR_REPLAYED, Reason.QR_UNKNOWN_KEY]
)
def test_a_code_that_failed_verification_is_refused_with_its_reason(reason: Reason) -> None:
    fault = QrFault(reason, "why", holder_id="H1" if reason is Reason.QR_EXPIRED else None)
    decision = decide(door(fault), view(), MONDAY_9)
    assert (decision.allowed, decision.reason, decision.detail) == (False, reason, "why")
    assert (decision.credential, decision.alert, decision.holder_id) == (
        "qr",
        None,
        fault.holder_id,
    )
    paying = decide(PosRequest(fault, entered_amount=500), pos_view(SHOP), MONDAY_8)
    assert (paying.allowed, paying.reason, paying.credential) == (False, reason, "qr")


def test_a_card_and_face_door_checks_the_face_of_a_code_too() -> None:
    # A phone can be lent like a card (不得转借): the face policy applies to it.
    required = door(face_policy=FacePolicy.ALWAYS)
    asked = decide(required, view(), MONDAY_9)
    assert asked.need is Need.FACE
    evidence = FaceEvidence(FaceOutcome.MATCH, 950, 600)
    checked = decide(door(face_policy=FacePolicy.ALWAYS, face=evidence), view(), MONDAY_9)
    assert checked.allowed and (checked.credential, checked.face_score) == ("qr", 950)


def test_a_code_pays_and_asks_for_the_pin_above_the_password_free_limit() -> None:
    limits = Limits(pin_free=2_000)
    small = decide(PosRequest(CODE, entered_amount=1_500), pos_view(SHOP, limits=limits), MONDAY_8)
    assert small.allowed and small.credential == "qr"
    assert small.payment == Payment(1_500, ((Purse.CASH, 1_500),))
    large = PosRequest(CODE, entered_amount=3_000)
    asked = decide(large, pos_view(SHOP, limits=limits), MONDAY_8)
    assert (asked.need, asked.credential) == (Need.PIN, "qr")
    answered = PosRequest(CODE, entered_amount=3_000, pin_ok=True)
    paid = decide(answered, pos_view(SHOP, limits=limits), MONDAY_8)
    assert paid.allowed and (paid.credential, paid.pin_attempt) == ("qr", True)


def test_a_frozen_balance_stops_code_payments_but_not_doors() -> None:
    frozen = card(CardStatus.FROZEN)
    assert decide(door(), view(frozen), MONDAY_9).allowed
    paying = decide(PosRequest(CODE, entered_amount=500), pos_view(SHOP, card=frozen), MONDAY_8)
    assert (paying.allowed, paying.reason) == (False, Reason.CARD_FROZEN)
