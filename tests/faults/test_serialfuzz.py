"""Garbage on the serial line from the board's side (bench/faults/serialfuzz.py), against the
running daemon driving the simulated board over a real pty: every tap decided, the gate opened
exactly for the admissions, forged alarms folded, the bad frames said by diag; the noise really
is what it is called; and the verdict finds what a broken run would show."""

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from bench.faults import serialfuzz
from drivers.turnstile.alarms import BUDGET
from drivers.turnstile.codec import Decoder, Discarded

pytestmark = pytest.mark.integration

FRAMES = 1500


@pytest.mark.timeout(90)
def test_serial_garbage_changes_nothing_the_gate_does(tmp_path: Path) -> None:
    result = serialfuzz.scenario(frames=FRAMES, taps=30, seed=6, workdir=tmp_path)
    assert result["violations"] == []
    assert result["daemon_alive"] and result["sigterm_exit"] == 0
    assert result["frames_injected"] >= FRAMES
    assert result["bytes_on_the_line"] == result["bytes_injected"] > 100_000
    assert result["taps_decided"] == 30
    assert result["admissions"] == result["gate_openings"] == result["passages_confirmed"] > 0
    # Whole frames start with STX, which always resyncs: each is counted for what it is.
    reasons, kinds = result["bad_frame_reasons"], result["frames_by_kind"]
    assert reasons["unknown_command"] == kinds["unknown command"]
    assert reasons["bad_crc"] >= kinds["bad CRC"]
    assert reasons["bad_length"] >= kinds["lying length"]
    # Folded: well over a hundred forged alarms, a handful of events.
    assert result["frames_by_kind"]["forged alarm"] > 100
    assert result["alarm_events"] <= BUDGET + 1


@pytest.mark.parametrize("seed", range(5))
def test_noise_decodes_as_discards_except_the_well_formed_kinds(seed: int) -> None:
    noise = serialfuzz.Noise(random.Random(seed))
    well_formed = {"forged alarm": 0}
    for maker in serialfuzz.Noise._makers:
        for _ in range(50):
            kind, raw = maker(noise)
            # A fresh STX after each piece ends a run with no end, as the next real frame would.
            items = Decoder().feed(raw + b"\x02")
            if kind == "forged alarm":
                assert len(items) == 1 and not isinstance(items[0], Discarded)
                well_formed[kind] += 1
            elif kind != "random bytes":  # random bytes may hold anything, rarely a frame
                assert all(isinstance(item, Discarded) for item in items), (kind, raw, items)
    assert well_formed["forged alarm"] == 50


GOOD: dict[str, Any] = {
    "daemon_alive": True,
    "daemon_exit": None,
    "tracebacks": 0,
    "sigterm_exit": 0,
    "settle_exit": 0,
    "line_stalled": False,
    "bytes_injected": 1000,
    "bytes_on_the_line": 1000,
    "rss_kb": {"start": 90_000, "max": 91_000, "end": 91_000},
    "seconds": 30.0,
    "alarm_events": 3,
    "alarm_warnings": 6,
    "gate_openings": 8,
    "admissions": 8,
    "passages_confirmed": 8,
    "taps_asked": 10,
    "taps_fed": 10,
    "taps_decided": 10,
    "diag_problems": "gate link: 900 bad frames from the board in the last 5 min (...)",
}


def test_the_verdict_passes_a_good_run() -> None:
    assert serialfuzz.verdict(GOOD) == []


@pytest.mark.parametrize(
    ("change", "found"),
    [
        ({"daemon_alive": False, "daemon_exit": -11}, "the daemon died during the noise: exit -11"),
        ({"tracebacks": 2}, "2 tracebacks in the daemon's output"),
        ({"sigterm_exit": 1}, "SIGTERM: exit 1"),
        ({"settle_exit": 1}, "the settling run exited 1"),
        ({"line_stalled": True}, "the daemon read nothing of the line for 30s"),
        ({"bytes_on_the_line": 900}, "100 injected bytes never reached the line"),
        ({"rss_kb": {"start": 90_000, "max": 141_000, "end": 1}}, "RSS grew from 90000 kB"),
        ({"rss_kb": {"start": 20_000, "max": 41_000, "end": 1}}, "RSS grew from 20000 kB"),
        ({"alarm_events": 40}, "40 security events from forged alarms (> 6)"),
        ({"alarm_warnings": 19}, "19 alarm warnings logged (> 18)"),
        ({"gate_openings": 9}, "the board opened 9 times for 8 admissions"),
        ({"passages_confirmed": 7}, "7 passages confirmed for 8 admissions"),
        ({"taps_decided": 9}, "9 of 10 taps decided (10 asked)"),
        ({"taps_fed": 4, "taps_decided": 4}, "4 of 4 taps decided (10 asked)"),
        ({"diag_problems": ""}, "diag status does not name the bad frames: ''"),
    ],
)
def test_the_verdict_finds_what_went_wrong(change: dict[str, Any], found: str) -> None:
    measured = copy.deepcopy(GOOD) | change
    violations = serialfuzz.verdict(measured)
    assert len(violations) == 1 and violations[0].startswith(found), violations


def test_the_alarm_bound_grows_with_the_minutes_begun() -> None:
    # Three minutes begun: three budgets and three flood events are allowed, not more.
    long_run = copy.deepcopy(GOOD) | {"seconds": 150.0, "alarm_events": 18}
    assert serialfuzz.verdict(long_run) == []
    assert serialfuzz.verdict(long_run | {"alarm_events": 19}) == [
        "19 security events from forged alarms (> 18)"
    ]
