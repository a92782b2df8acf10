"""decide + durable commit, the core of a tap, at site scale.

    .venv/bin/python bench/decide_commit.py            # 1,000,000 holders, 10,000,000 journal rows
    .venv/bin/python bench/decide_commit.py --quick    # 10,000 holders, 100,000 rows (< 1 minute)

Measured per tap: the store's door view (indexed lookups), ``decide()``, and the commit of the
journal record + outbox row with ``synchronous=FULL`` (fsync'd) — exactly what ``DoorFlow``
asks the tap loop to commit before it may ask for the gate. The baseline, measured in the same
run on the same disk, is what a simple controller does instead: an in-memory dict loaded from a
JSON allowlist file and a JSON-lines transaction log with an fsync per tap. The fsync floor
(write + fsync of one line) is reported too.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, percentiles, progress, write_result
from sitegen import BENCH_DOOR, Scale, build, card_number

from drivers.interfaces import CardPresented
from models.cards import Genuineness, PresentedCard
from terminal.flows.door import DoorFlow, DoorSettings
from terminal.flows.steps import Commit, Moment
from terminal.store import Store

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=TZ)  # a Monday morning


def presented_cards(scale: Scale, taps: int, seed: int) -> list[PresentedCard]:
    rng = random.Random(seed)
    cards = []
    for _ in range(taps):
        roll = rng.random()
        if roll < 0.05:  # a card this site never issued
            cards.append(PresentedCard(f"9999{rng.randrange(10**16):016d}", Genuineness.GENUINE, 1))
        else:
            cards.append(
                PresentedCard(card_number(rng.randrange(scale.holders)), Genuineness.GENUINE, 1)
            )
    return cards


def measure_terminal(path: Path, cards: list[PresentedCard]) -> tuple[list[int], dict[str, int]]:
    store = Store.open(path)
    settings = DoorSettings(BENCH_DOOR, "in", 5.0)

    def tap(card: PresentedCard) -> str:
        # A fresh flow per tap: each tap is measured from idle to its durable record.
        [commit] = DoorFlow(settings=settings, store=store).step(
            CardPresented(card), Moment(NOW, time.monotonic())
        )
        assert isinstance(commit, Commit)
        store.commit(commit.draft, commit.event, commit.effects)
        return str(commit.draft.reason)

    samples, reasons = [], {}
    for warm in cards[:50]:
        tap(warm)
    for card in cards:
        started = time.perf_counter_ns()
        reason = tap(card)
        samples.append(time.perf_counter_ns() - started)
        reasons[reason] = reasons.get(reason, 0) + 1
    store.close()
    return samples, reasons


def measure_json_baseline(scale: Scale, cards: list[PresentedCard], workdir: Path) -> list[int]:
    allowlist = {
        card_number(n): {"holder": f"H{n:08d}", "status": "active", "groups": ["g000"]}
        for n in range(scale.holders)
    }
    allow_file = workdir / "allowlist.json"
    allow_file.write_text(json.dumps(allowlist))
    loaded = json.loads(allow_file.read_text())
    samples = []
    with (workdir / "log.jsonl").open("a", encoding="utf-8") as log:
        for card in cards:
            started = time.perf_counter_ns()
            entry = loaded.get(card.number)
            allowed = entry is not None and entry["status"] == "active" and bool(entry["groups"])
            log.write(
                json.dumps(
                    {
                        "card": card.number,
                        "door": BENCH_DOOR,
                        "allowed": allowed,
                        "at": NOW.isoformat(),
                    }
                )
                + "\n"
            )
            log.flush()
            os.fsync(log.fileno())
            samples.append(time.perf_counter_ns() - started)
    return samples


def measure_fsync_floor(taps: int, workdir: Path) -> list[int]:
    line = b"x" * 300 + b"\n"
    samples = []
    fd = os.open(workdir / "floor.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(taps):
            started = time.perf_counter_ns()
            os.write(fd, line)
            os.fsync(fd)
            samples.append(time.perf_counter_ns() - started)
    finally:
        os.close(fd)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small site, finishes in < 1 min")
    parser.add_argument("--taps", type=int, default=None, help="measured taps (default 5000)")
    args = parser.parse_args()
    scale = Scale(10_000, 100_000) if args.quick else Scale(1_000_000, 10_000_000)
    taps = args.taps or (1000 if args.quick else 5000)

    progress(f"site: {scale.holders:,} holders, {scale.journal:,} journal rows at {scale.path}")
    path, generation = build(scale)
    progress(f"site ready (generated in {generation:.0f} s)" if generation else "site cached")
    cards = presented_cards(scale, taps, seed=scale.seed + 1)

    # Interleave the three measurements in rounds so a noisy neighbour hits them all alike.
    terminal_ns: list[int] = []
    baseline_ns: list[int] = []
    floor_ns: list[int] = []
    reasons: dict[str, int] = {}
    rounds = 5
    with tempfile.TemporaryDirectory(dir=path.parent, prefix="baseline-") as scratch:
        for r in range(rounds):
            chunk = cards[r::rounds]
            progress(f"round {r + 1}/{rounds}: terminal")
            samples, counted = measure_terminal(path, chunk)
            terminal_ns += samples
            for key, value in counted.items():
                reasons[key] = reasons.get(key, 0) + value
            progress(f"round {r + 1}/{rounds}: JSON allowlist + fsync'd log baseline")
            baseline_ns += measure_json_baseline(scale, chunk, Path(scratch))
            floor_ns += measure_fsync_floor(len(chunk), Path(scratch))

    ours, base, floor = percentiles(terminal_ns), percentiles(baseline_ns), percentiles(floor_ns)
    result = {
        "benchmark": "decide_commit",
        "command": " ".join(["bench/decide_commit.py", *sys.argv[1:]]),
        "machine": machine(),
        "scale": {"holders": scale.holders, "journal_rows": scale.journal, "taps": taps},
        "generation_seconds": round(generation, 1),
        "terminal": ours,
        "baseline_json_allowlist_fsync_log": base,
        "fsync_floor": floor,
        "ratio_p50_terminal_over_baseline": round(ours["p50_ms"] / base["p50_ms"], 2),
        "ratio_p99_terminal_over_baseline": round(ours["p99_ms"] / base["p99_ms"], 2),
        "ratio_p50_terminal_over_fsync_floor": round(ours["p50_ms"] / floor["p50_ms"], 2),
        "reasons": reasons,
        "target_p99_ms": 2.0,
    }
    out = write_result("decide_commit", result)
    print(
        f"\ndecide + durable commit — {scale.holders:,} holders, {scale.journal:,} journal rows,"
        f" {taps:,} taps"
    )
    print(f"{'':34}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, stats in (
        ("terminal (view+decide+commit)", ours),
        ("baseline: JSON dict + fsync log", base),
        ("fsync floor (write+fsync)", floor),
    ):
        print(
            f"{label:34}{stats['p50_ms']:9.3f}{stats['p90_ms']:9.3f}{stats['p99_ms']:9.3f}"
            f"{stats['max_ms']:9.3f}"
        )
    print(
        f"ratio terminal/baseline: p50 {result['ratio_p50_terminal_over_baseline']}×, "
        f"p99 {result['ratio_p99_terminal_over_baseline']}×; target p99 ≤ 2 ms: "
        f"{'met' if ours['p99_ms'] <= 2.0 else 'NOT met'}"
    )
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
