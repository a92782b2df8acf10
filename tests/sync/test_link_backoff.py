"""Reconnecting after a broker blip: the first retries come within seconds (a restart of the
broker is over in that time and the backlog should not wait a minute for it), with jitter so a
site's terminals do not all reconnect at once, and then back off to the configured cap."""

from statistics import mean

from sync.link import LinkOptions, MqttLink


def waits(link: MqttLink, attempts: range, samples: int = 50) -> list[float]:
    return [link._backoff(attempt) for attempt in attempts for _ in range(samples)]


def test_first_retries_are_quick_and_jittered_then_back_off_to_the_cap() -> None:
    link = MqttLink(LinkOptions("t1", "127.0.0.1", 1, ("a/b",), reconnect_max=60.0))
    quick = waits(link, range(1, 11))
    assert min(quick) > 0 and max(quick) <= 2.0  # never a busy loop, never a minute
    assert len({round(d, 3) for d in quick}) > 100  # jittered, not lock-step
    late = waits(link, range(40, 60))
    assert max(late) <= 60.0  # the configured cap holds
    assert max(late) > 30.0 and mean(late) > 5 * mean(quick)  # a long outage does back off


def test_a_low_cap_bounds_the_quick_retries_too() -> None:
    link = MqttLink(LinkOptions("t1", "127.0.0.1", 1, ("a/b",), reconnect_max=1.0))
    assert max(waits(link, range(1, 60))) <= 1.0
