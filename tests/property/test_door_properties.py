"""The whole door rule set through ``decide()``: cards and faces, door modes, face evidence."""

from dataclasses import replace
from datetime import datetime

from hypothesis import given

from models import (
    Alert,
    CardStatus,
    DoorMode,
    DoorRequest,
    DoorView,
    FaceCredential,
    FaceOutcome,
    FacePolicy,
    GateAction,
    Genuineness,
    HolderStatus,
    Need,
    PresentedCard,
    decide,
)
from tests.property.strategies import SITE, scenarios

NEVER_ADMITTED = {CardStatus.LOST, CardStatus.REPLACED, CardStatus.CANCELLED, CardStatus.EXPIRED}
CARD_ALERTS = {Alert.LOST_CARD_USED, Alert.REPLACED_CARD_USED, Alert.CANCELLED_CARD_USED}
Scenario = tuple[DoorRequest, DoorView, datetime]


def _face_required(request: DoorRequest, view: DoorView) -> bool:
    holder = view.holder
    policy = request.face_policy
    return policy is FacePolicy.ALWAYS or (
        policy is FacePolicy.HOLDER and holder is not None and holder.require_face
    )


@given(scenarios())
def test_void_cards_never_pass(scenario: Scenario) -> None:
    request, view, now = scenario
    decision = decide(request, view, now)
    card = view.card
    if isinstance(request.credential, PresentedCard) and card and card.status in NEVER_ADMITTED:
        assert not decision.allowed


@given(scenarios())
def test_a_card_admission_implies_every_rule_holds(scenario: Scenario) -> None:
    request, view, now = scenario
    decision = decide(request, view, now)
    credential = request.credential
    if not decision.allowed or not isinstance(credential, PresentedCard):
        return
    card = view.card
    assert card is not None
    assert credential.genuine is not Genuineness.NOT_GENUINE
    assert credential.issuer_id is None or credential.issuer_id in SITE.issuers
    assert credential.class_code is None or SITE.class_name(credential.class_code) == (
        card.card_class
    )
    assert card.status is CardStatus.ACTIVE
    assert card.valid_until is None or now.date() <= card.valid_until
    assert card.valid_from is None or card.valid_from <= now.date()
    assert credential.valid_until is None or now.date() <= credential.valid_until
    assert card.issue_seq >= (view.newest_issue_seq or 0)
    assert view.holder is not None and view.holder.status == "active"
    assert any(request.door_id in g.doors for g in view.groups)
    assert request.mode is not DoorMode.LOCKED
    if _face_required(request, view):
        assert request.face is not None and request.face.outcome is FaceOutcome.MATCH
        assert decision.credential == "card+face"
    else:
        assert decision.credential == "card"


@given(scenarios())
def test_a_face_admission_implies_the_holders_standing(scenario: Scenario) -> None:
    request, view, now = scenario
    decision = decide(request, view, now)
    credential = request.credential
    if not isinstance(credential, FaceCredential):
        return
    # A face never raises the security events of a card nobody presented.
    assert decision.alert not in CARD_ALERTS
    if not decision.allowed:
        return
    holder = view.holder
    assert credential.live and decision.credential == "face"
    assert holder is not None and holder.id == credential.holder_id
    assert holder.status is HolderStatus.ACTIVE
    assert request.mode is not DoorMode.LOCKED
    card = view.card
    if decision.card_number is not None:
        # It stood on its holder's usable card: that card's standing counts.
        assert card is not None and card.number == decision.card_number
        assert card.status not in (CardStatus.CANCELLED, CardStatus.EXPIRED, CardStatus.SPEND_ONLY)


@given(scenarios())
def test_lockdown_admits_nobody_and_evacuation_admits_as_normal_without_operating_the_gate(
    scenario: Scenario,
) -> None:
    request, view, now = scenario
    locked = decide(replace(request, mode=DoorMode.LOCKED), view, now)
    assert not locked.allowed and locked.gate is GateAction.NONE
    normal = decide(replace(request, mode=DoorMode.NORMAL), view, now)
    free = decide(replace(request, mode=DoorMode.FREE), view, now)
    assert (normal.allowed, normal.reason, normal.need) == (free.allowed, free.reason, free.need)
    if normal.allowed:
        assert (normal.gate, free.gate) == (GateAction.OPEN, GateAction.RELEASED)
    else:
        assert normal.gate is free.gate is GateAction.NONE


@given(scenarios())
def test_a_face_is_asked_for_only_where_the_rules_want_one_and_answers_it_for_good(
    scenario: Scenario,
) -> None:
    request, view, now = scenario
    asking = decide(replace(request, face=None), view, now)
    if asking.need is None:
        # Asked or not, evidence changes nothing where no face was wanted.
        assert decide(request, view, now) == asking
        return
    assert asking.need is Need.FACE and not asking.allowed and not asking.final
    assert isinstance(request.credential, PresentedCard) and _face_required(request, view)
    assert request.mode is not DoorMode.LOCKED  # lockdown refuses before any camera
    answered = decide(request, view, now) if request.face is not None else None
    if answered is not None:
        assert answered.final
        assert answered.allowed == (request.face is not None and request.face.matched)
        if request.face.outcome is FaceOutcome.MISMATCH:
            assert answered.alert is Alert.CARD_LENDING


@given(scenarios())
def test_every_answer_is_final_or_a_question_and_only_admissions_operate_the_gate(
    scenario: Scenario,
) -> None:
    request, view, now = scenario
    decision = decide(request, view, now)
    assert decision.final == (decision.need is None)
    assert (decision.gate is not GateAction.NONE) == decision.allowed
    assert decision.face_score is None or decision.credential in ("face", "card+face")


@given(scenarios())
def test_decide_is_deterministic(scenario: Scenario) -> None:
    request, view, now = scenario
    assert decide(request, view, now) == decide(request, view, now)
