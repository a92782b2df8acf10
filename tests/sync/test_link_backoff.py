"""Reconnecting after a broker blip: the first retries come within seconds (a restart of the
broker is over in that time and the backlog should not wait a minute for it), with jitter so a
site's terminals do not all reconnect at once, and then back off to the configured cap."""

from sync.link import FAST_RETRIES, LinkOptions, MqttLink


def test_first_retries_are_quick_and_jittered_then_back_off_to_the_cap() -> None:
    link = MqttLink(LinkOptions("t1", "127.0.0.1", 1, ("a/b",), reconnect_max=60.0))
    quick = [link._backoff(attempt) for attempt in range(1, FAST_RETRIES + 1) for _ in range(20)]
    assert max(quick) <= 2.0
    assert len({round(d, 3) for d in quick}) > 10  # jittered, not lock-step
    later = [link._backoff(attempt) for attempt in range(FAST_RETRIES + 1, 60) for _ in range(20)]
    assert max(later) <= 60.0
    assert max(later) > 30.0  # a long outage does back off
