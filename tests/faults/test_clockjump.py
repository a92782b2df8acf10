"""The wall clock stepped under the running daemon (bench/faults/clockjump.py): back 1 h, the
same card is not let in twice nor charged twice; forward 1 day, the old passage and payment
have run out; and the check sees when the step never reached the daemon."""

from pathlib import Path

import pytest

from bench.faults import clockjump

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["door", "pos"])
def test_clock_steps_do_not_fool_the_time_rules(kind: str, tmp_path: Path) -> None:
    result = clockjump.scenario(kind, workdir=tmp_path)
    assert result["violations"] == []
    assert [step["clock"] for step in result["steps"]] == ["now", "back 1 h", "forward 1 day"]


def test_a_step_that_never_reached_the_daemon_is_reported() -> None:
    unshifted = [{"at": f"2026-12-02T09:00:0{i}.000Z"} for i in range(3)]
    assert len(clockjump._stepped(unshifted)) == 2
    shifted = [
        {"at": "2026-12-02T09:00:00.000Z"},
        {"at": "2026-12-02T08:00:02.000Z"},
        {"at": "2026-12-03T09:00:04.000Z"},
    ]
    assert clockjump._stepped(shifted) == []
