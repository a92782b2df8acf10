from datetime import datetime

from hypothesis import given

from models import CardStatus, DoorRequest, DoorView, Genuineness, PresentedCard, decide
from tests.property.strategies import scenarios

NEVER_ADMITTED = {CardStatus.LOST, CardStatus.REPLACED, CardStatus.CANCELLED, CardStatus.EXPIRED}


@given(scenarios())
def test_void_cards_never_pass(scenario: tuple[DoorRequest, DoorView, datetime]) -> None:
    request, view, now = scenario
    decision = decide(request, view, now)
    if view.card is not None and view.card.status in NEVER_ADMITTED:
        assert not decision.allowed


@given(scenarios())
def test_admission_implies_every_rule_holds(
    scenario: tuple[DoorRequest, DoorView, datetime],
) -> None:
    request, view, now = scenario
    decision = decide(request, view, now)
    if not decision.allowed:
        return
    card, credential = view.card, request.credential
    assert card is not None and isinstance(credential, PresentedCard)
    assert credential.genuine is not Genuineness.NOT_GENUINE
    assert card.status is CardStatus.ACTIVE
    assert card.valid_until is None or now.date() <= card.valid_until
    assert card.valid_from is None or card.valid_from <= now.date()
    assert credential.valid_until is None or now.date() <= credential.valid_until
    assert card.issue_seq >= (view.newest_issue_seq or 0)
    assert view.holder is not None and view.holder.status == "active"
    assert any(request.door_id in g.doors for g in view.groups)


@given(scenarios())
def test_decide_is_deterministic(scenario: tuple[DoorRequest, DoorView, datetime]) -> None:
    request, view, now = scenario
    assert decide(request, view, now) == decide(request, view, now)
