"""Garbage on the serial line from the board's side (bench/faults/serialfuzz.py), against the
running daemon driving the simulated board over a real pty: every tap decided, the gate opened
exactly for the admissions, forged alarms folded, the bad frames said by diag; and the noise
really is what it is called."""

import random
from pathlib import Path

import pytest

from bench.faults import serialfuzz
from drivers.turnstile.codec import Decoder, Discarded

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_serial_garbage_changes_nothing_the_gate_does(tmp_path: Path) -> None:
    result = serialfuzz.scenario(frames=1500, taps=30, seed=6, workdir=tmp_path)
    assert result["violations"] == []
    assert result["taps_decided"] == 30
    assert result["admissions"] == result["gate_openings"] > 0
    assert result["bad_frames_counted"] > 0
    assert result["frames_by_kind"]["forged alarm"] > result["alarm_events"]


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


def test_the_verdict_finds_what_went_wrong() -> None:
    measured = {
        "seconds": 30.0,
        "alarm_events": 40,
        "gate_openings": 9,
        "admissions": 8,
        "taps_fed": 10,
        "taps_decided": 9,
        "sigterm_exit": 1,
    }
    assert serialfuzz.verdict(measured) == [
        "40 security events from forged alarms (> 6)",
        "the board opened 9 times for 8 admissions",
        "9 of 10 taps decided",
        "SIGTERM: exit 1",
    ]
