"""The store's views for a recognised face: the holder's newest card stands for a card."""

from models import FaceCredential, Reason, decide
from models.door import DoorRequest
from terminal.store import Store
from tests.factories import MONDAY_9
from tests.fixtures import DOOR, card_number, seed


def test_a_replaced_cards_holder_is_judged_on_the_new_card(store: Store) -> None:
    seed(store)
    # H007's first card was replaced by card 17 (issue sequence 2).
    current = store.current_card("H007")
    assert current is not None and current.number == card_number(17)
    view = store.door_view_for_holder("H007", DOOR, MONDAY_9.date())
    assert view.card == current and view.newest_issue_seq == 2
    assert view.holder is not None and view.holder.id == "H007"


def test_a_holder_whose_only_card_is_lost_still_passes_by_face(store: Store) -> None:
    seed(store)
    view = store.door_view_for_holder("H005", DOOR, MONDAY_9.date())
    assert view.card is not None and view.card.status == "lost"
    assert view.groups  # the holder's access groups, whatever became of the card
    decision = decide(DoorRequest(FaceCredential("H005", 970), DOOR, "in"), view, MONDAY_9)
    assert decision.allowed and decision.alert is None
    assert (decision.holder_id, decision.card_number) == ("H005", None)


def test_an_unknown_holder_has_no_card_and_no_view(store: Store) -> None:
    seed(store)
    assert store.current_card("H404") is None
    view = store.door_view_for_holder("H404", DOOR, MONDAY_9.date())
    assert view.card is None and view.holder is None
    decision = decide(DoorRequest(FaceCredential("H404", 970), DOOR, "in"), view, MONDAY_9)
    assert decision.reason is Reason.HOLDER_UNKNOWN
