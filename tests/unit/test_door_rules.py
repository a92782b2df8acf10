"""One test (or table row) per door rule of RULES.md; each fails if its rule is removed."""

from datetime import date, datetime

import pytest

from models import (
    Alert,
    Calendar,
    CardFault,
    CardStatus,
    Genuineness,
    HolderStatus,
    PresentedCard,
    Reason,
    decide,
)
from tests.factories import (
    DOOR,
    MONDAY_9,
    NUMBER,
    at,
    card,
    group,
    holder,
    presented,
    request,
    view,
    window,
)


def test_active_card_in_hours_is_admitted() -> None:
    decision = decide(request(), view(), MONDAY_9)
    assert decision.allowed
    assert decision.reason is Reason.ALLOWED
    assert decision.holder_id == "H1"
    assert decision.card_number == NUMBER
    assert decision.alert is None


@pytest.mark.parametrize(
    ("status", "reason", "alert"),
    [
        (CardStatus.LOST, Reason.CARD_LOST, Alert.LOST_CARD_USED),
        (CardStatus.REPLACED, Reason.CARD_REPLACED, Alert.REPLACED_CARD_USED),
        (CardStatus.CANCELLED, Reason.CARD_CANCELLED, Alert.CANCELLED_CARD_USED),
        (CardStatus.FROZEN, Reason.CARD_FROZEN, None),
        (CardStatus.EXPIRED, Reason.CARD_EXPIRED, None),
        (CardStatus.SPEND_ONLY, Reason.CARD_SPEND_ONLY, None),
    ],
)
def test_lifecycle_status_denies_at_the_door(
    status: CardStatus, reason: Reason, alert: Alert | None
) -> None:
    decision = decide(request(), view(card(status)), MONDAY_9)
    assert not decision.allowed
    assert decision.reason is reason
    assert decision.alert is alert


def test_status_outranks_permissions() -> None:
    # A lost card at a door it has no access to is still reported as lost: that is the alert.
    decision = decide(request(door="other-door"), view(card(CardStatus.LOST)), MONDAY_9)
    assert decision.reason is Reason.CARD_LOST


def test_unknown_card_is_denied() -> None:
    decision = decide(request(presented("99999999999999999999")), view(), MONDAY_9)
    assert decision.reason is Reason.CARD_UNKNOWN
    empty = decide(request(), view().__class__(view_seq=1), MONDAY_9)
    assert empty.reason is Reason.CARD_UNKNOWN


def test_card_fault_becomes_its_denial() -> None:
    fault = CardFault(Reason.CARD_MALFORMED, "bad BCD", None)
    decision = decide(request(fault), view(), MONDAY_9)  # type: ignore[arg-type]
    assert decision.reason is Reason.CARD_MALFORMED
    assert decision.detail == "bad BCD"


def test_failed_authentication_is_a_cloned_card_alert() -> None:
    clone = PresentedCard(NUMBER, Genuineness.NOT_GENUINE, 1)
    decision = decide(request(clone), view(), MONDAY_9)
    assert decision.reason is Reason.CARD_NOT_GENUINE
    assert decision.alert is Alert.CLONED_CARD
    assert decision.holder_id == "H1"


def test_unchecked_card_from_uid_mode_is_decided_on_the_allowlist() -> None:
    uid_card = PresentedCard(NUMBER, Genuineness.UID_ONLY)
    assert decide(request(uid_card), view(), MONDAY_9).allowed


def test_older_issue_sequence_is_a_void_replaced_card() -> None:
    # The holder now has card issue 2; someone presents an issue-1 card with the same number.
    decision = decide(request(presented(issue_seq=1)), view(card(issue_seq=2)), MONDAY_9)
    assert decision.reason is Reason.CARD_REPLACED
    assert decision.alert is Alert.REPLACED_CARD_USED


def test_older_card_is_void_even_before_hq_marks_it_replaced() -> None:
    # The holder's other card has issue 2; this still-active issue-1 card must not open.
    decision = decide(request(), view(card(issue_seq=1), newest_issue_seq=2), MONDAY_9)
    assert decision.reason is Reason.CARD_REPLACED


def test_card_claiming_a_newer_issue_than_the_registry_is_a_mismatch() -> None:
    decision = decide(request(presented(issue_seq=3)), view(card(issue_seq=2)), MONDAY_9)
    assert decision.reason is Reason.CARD_MISMATCH


@pytest.mark.parametrize(
    ("valid_from", "valid_until", "reason"),
    [
        (date(2026, 11, 24), None, Reason.CARD_NOT_YET_VALID),
        (None, date(2026, 11, 22), Reason.CARD_EXPIRED),
        (None, date(2026, 11, 23), Reason.ALLOWED),  # the last valid day is a whole day
        (date(2026, 11, 23), None, Reason.ALLOWED),
    ],
)
def test_registry_validity_window(
    valid_from: date | None, valid_until: date | None, reason: Reason
) -> None:
    decision = decide(
        request(), view(card(valid_from=valid_from, valid_until=valid_until)), MONDAY_9
    )
    assert decision.reason is reason


def test_validity_written_on_the_card_also_counts() -> None:
    ended = presented(valid_until=date(2026, 11, 1))
    assert decide(request(ended), view(), MONDAY_9).reason is Reason.CARD_EXPIRED


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"status": HolderStatus.INACTIVE}, Reason.HOLDER_INACTIVE),
        ({"status": HolderStatus.SPEND_ONLY}, Reason.CARD_SPEND_ONLY),
        ({"valid_until": date(2026, 11, 1)}, Reason.HOLDER_INACTIVE),
        ({"valid_from": date(2026, 12, 1)}, Reason.HOLDER_INACTIVE),
    ],
)
def test_holder_must_be_active(fields: dict[str, object], reason: Reason) -> None:
    assert decide(request(), view(holder_=holder(**fields)), MONDAY_9).reason is reason


def test_card_without_registered_holder_is_denied() -> None:
    bare = view()
    bare = bare.__class__(view_seq=1, card=bare.card, holder=None, newest_issue_seq=1)
    assert decide(request(), bare, MONDAY_9).reason is Reason.HOLDER_UNKNOWN


def test_door_outside_every_group_is_no_access() -> None:
    assert decide(request(door="server-room"), view(), MONDAY_9).reason is Reason.NO_ACCESS
    assert decide(request(), view(groups=()), MONDAY_9).reason is Reason.NO_ACCESS


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (at(2026, 11, 23, "06:59"), False),
        (at(2026, 11, 23, "07:00"), True),
        (at(2026, 11, 23, "19:59"), True),
        (at(2026, 11, 23, "20:00"), False),  # the end of a window is exclusive
        (at(2026, 11, 28, "09:00"), False),  # Saturday
    ],
)
def test_weekly_window(moment: datetime, allowed: bool) -> None:
    decision = decide(request(), view(), moment)
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reason is Reason.OUTSIDE_SCHEDULE


def test_any_matching_group_admits() -> None:
    weekend = group(window({6, 7}, "09:00", "12:00"))
    saturday = at(2026, 11, 28, "10:00")
    assert decide(request(), view(groups=(group(), weekend)), saturday).allowed


def test_public_holiday_closes_weekday_windows() -> None:
    new_year = at(2027, 1, 1, "10:00")  # a Friday
    calendar = Calendar("cn", holidays=frozenset({date(2027, 1, 1)}))
    decision = decide(request(), view(calendars=(calendar,)), new_year)
    assert decision.reason is Reason.OUTSIDE_SCHEDULE
    # Without the holiday the same Friday is a working day.
    assert decide(request(), view(), new_year).allowed


def test_holiday_windows_apply_on_holidays() -> None:
    calendar = Calendar("cn", holidays=frozenset({date(2027, 1, 1)}))
    duty = group(window({8}, "08:00", "18:00"))
    assert decide(
        request(), view(groups=(duty,), calendars=(calendar,)), at(2027, 1, 1, "10:00")
    ).allowed
    # Day 8 windows do nothing on ordinary days.
    assert not decide(request(), view(groups=(duty,)), MONDAY_9).allowed


def test_makeup_workday_on_a_weekend_opens_like_a_working_day() -> None:
    sunday = at(2027, 2, 7, "09:00")
    calendar = Calendar("cn", workdays=frozenset({date(2027, 2, 7)}))
    assert not decide(request(), view(), sunday).allowed
    assert decide(request(), view(calendars=(calendar,)), sunday).allowed


def test_calendar_applies_only_to_groups_that_use_it() -> None:
    calendar = Calendar("other", holidays=frozenset({date(2026, 11, 23)}))
    assert decide(request(), view(calendars=(calendar,)), MONDAY_9).allowed


def test_overnight_window_runs_into_the_next_morning() -> None:
    night = group(window({1}, "22:00", "06:00"))
    assert decide(request(), view(groups=(night,)), at(2026, 11, 23, "23:00")).allowed
    assert decide(request(), view(groups=(night,)), at(2026, 11, 24, "05:59")).allowed
    assert not decide(request(), view(groups=(night,)), at(2026, 11, 24, "06:00")).allowed
    assert not decide(request(), view(groups=(night,)), at(2026, 11, 23, "05:00")).allowed


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(request(), view(), datetime(2026, 11, 23, 9, 0))


def test_door_membership_is_checked_even_if_the_view_has_extra_groups() -> None:
    elsewhere = group(doors=("north-gate",))
    assert decide(request(), view(groups=(elsewhere,)), MONDAY_9).reason is Reason.NO_ACCESS
    assert DOOR not in elsewhere.doors


def test_a_uid_mode_read_is_journalled_as_uid_not_card() -> None:
    # Nothing proved the card genuine: the record must not claim a card was checked.
    by_uid = PresentedCard(NUMBER, Genuineness.UID_ONLY, 1)
    assert decide(request(by_uid), view(), MONDAY_9).credential == "uid"
    assert decide(request(), view(), MONDAY_9).credential == "card"
