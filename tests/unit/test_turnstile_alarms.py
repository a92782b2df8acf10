"""How board alarms become security events: repeats folded, a flood summarised (pure, no port)."""

import logging

import pytest

from drivers.turnstile.alarms import AlarmLimiter, SecurityKind, log_ended

FORCED, HELD, TAMPER = SecurityKind.DOOR_FORCED, SecurityKind.HELD_OPEN, SecurityKind.TAMPER


def test_a_spoofed_stream_of_one_kind_is_one_event_with_its_repeats_counted() -> None:
    limiter = AlarmLimiter()
    raised = [limiter.offer(TAMPER, t * 0.05) for t in range(600)]  # 600 frames in 30 s
    assert [k for k in raised if k is not None] == [TAMPER]
    counts = limiter.counts()
    assert counts["raised"] == {"tamper": 1}
    assert counts["repeats"] == {"tamper": 599}


def test_the_same_kind_after_a_quiet_window_is_a_new_event() -> None:
    limiter = AlarmLimiter(repeat_window=30.0)
    assert limiter.offer(FORCED, 0.0) is FORCED
    assert limiter.offer(FORCED, 29.0) is None  # within 30 s of the last copy
    assert limiter.offer(FORCED, 58.0) is None  # the window runs from the latest repeat
    assert limiter.offer(FORCED, 88.5) is FORCED
    assert limiter.counts()["repeats"] == {"door_forced": 2}


def test_an_alarm_still_set_on_the_board_keeps_its_repeats_folded() -> None:
    limiter = AlarmLimiter(repeat_window=30.0)
    assert limiter.offer(TAMPER, 0.0) is TAMPER
    limiter.board_alarms({TAMPER}, 10.0)
    assert limiter.offer(TAMPER, 100.0) is None  # the board never cleared it
    limiter.board_alarms(set(), 101.0)
    assert limiter.offer(TAMPER, 140.0) is TAMPER  # cleared, and quiet for longer than the window


def test_kinds_are_folded_separately() -> None:
    limiter = AlarmLimiter()
    assert [limiter.offer(k, 1.0) for k in (FORCED, HELD, TAMPER)] == [FORCED, HELD, TAMPER]
    assert [limiter.offer(k, 2.0) for k in (FORCED, HELD, TAMPER)] == [None, None, None]


def test_beyond_the_budget_one_flood_event_stands_for_the_rest() -> None:
    limiter = AlarmLimiter(repeat_window=1.0, budget=3, per=60.0)
    kinds = [FORCED, HELD, TAMPER] * 4
    raised = [limiter.offer(k, i * 2.0) for i, k in enumerate(kinds)]  # each a new incident
    assert raised[:3] == [FORCED, HELD, TAMPER]
    assert raised[3] is SecurityKind.ALARM_FLOOD
    assert raised[4:] == [None] * 8
    counts = limiter.counts()
    assert counts["flooded"] == {"door_forced": 3, "held_open": 3, "tamper": 3}
    assert counts["flooding"] is True


def test_a_flood_ends_after_a_quiet_minute_and_the_budget_is_back() -> None:
    limiter = AlarmLimiter(repeat_window=1.0, budget=1, per=60.0)
    assert limiter.offer(FORCED, 0.0) is FORCED
    assert limiter.offer(TAMPER, 5.0) is SecurityKind.ALARM_FLOOD
    assert limiter.offer(HELD, 10.0) is None
    limiter.sweep(71.0)
    assert limiter.counts()["flooding"] is False
    assert limiter.offer(HELD, 72.0) is HELD
    # Another flood is announced again, once.
    assert limiter.offer(TAMPER, 80.0) is SecurityKind.ALARM_FLOOD
    assert limiter.offer(FORCED, 85.0) is None


def test_what_ended_is_logged_with_its_counts(caplog: pytest.LogCaptureFixture) -> None:
    limiter = AlarmLimiter(repeat_window=30.0, budget=1, per=60.0)
    limiter.offer(TAMPER, 0.0)
    limiter.offer(TAMPER, 20.0)
    limiter.offer(FORCED, 21.0)  # beyond the budget: the flood
    limiter.offer(HELD, 22.0)
    assert limiter.sweep(40.0) == []
    with caplog.at_level(logging.WARNING, logger="drivers.turnstile.alarms"):
        for what in limiter.sweep(90.0):
            log_ended(what)
    assert caplog.messages == [
        "turnstile alarm tamper over: 1 repeats in 20s were one event",
        "turnstile alarm flood over after 1s: 2 alarms were not raised one by one "
        "(door_forced 1, held_open 1)",
    ]
