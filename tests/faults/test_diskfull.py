"""A full disk under the running daemon (bench/faults/diskfull.py), on a tmpfs the test mounts:
the gate stays shut and the till refuses what cannot be recorded, diag says so, service comes
back without a restart, SIGTERM while full exits 0; and the checks find each of those failing."""

from pathlib import Path

import pytest

from bench.faults import diskfull

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["door", "pos"])
def test_a_full_disk_fails_closed_and_recovers_without_a_restart(kind: str, tmp_path: Path) -> None:
    try:
        result = diskfull.scenario(kind, taps=12, seed=3, workdir=tmp_path)
    except diskfull.SmallFilesystemError as exc:  # not root: nowhere to make a small disk
        pytest.skip(str(exc))
    assert result["violations"] == []
    full = next(p for p in result["phases"] if p["phase"] == "full")
    assert full["refused_not_recorded"] > 0 and full["diag_mode"] == "store_failed"
    assert result["sigterm_while_full_exit"] == 0


def test_the_phase_checks_find_what_went_wrong() -> None:
    outcome = diskfull.Outcome("door", sigterm_exit=1)
    outcome.phases = [
        diskfull.Phase("before", fed=5, allowed=5, openings=5),
        diskfull.Phase("full", fed=5, openings=3, diag={"mode": "normal"}),
        diskfull.Phase("recovered", fed=5, diag={"mode": "store_failed"}),
    ]
    diskfull.check_phases(outcome, admissions=5)
    assert outcome.violations == [
        "SIGTERM on a full disk: exit 1",
        "no tap refused while full: the disk never filled for it",
        "the gate opened 8 times for 5 admissions",
        "diag while full: normal, ",
        "nothing allowed after the space came back, without a restart",
        "diag still says store_failed after the space came back",
    ]
