"""POS benchmarks: a payment's decide + commit at site scale, and a canteen lunch rush.

    .venv/bin/python bench/pos.py            # 1,000,000-holder site + rush of 2,000 taps on 4 POS
    .venv/bin/python bench/pos.py --quick    # 10,000-holder site + rush of 400 taps (< 1 minute)

1. *payment core*: the store's POS view (purses, pending debits, day totals, usage), ``decide()``
   with the full rule set (meal periods, class prices, limits, subsidy order, work meals), and
   the commit of journal + outbox + pending debits + day totals + card usage — fsync'd — on the
   site database of bench/sitegen.py with purses and rules added.
2. *lunch rush*: four canteen POS terminals, each its own database and thread, taking taps as fast
   as they come through the real ``PosFlow`` (simulated reader, keypad and display): throughput
   and per-tap latency.
Baseline, same run, same disk: a dict of balances loaded from a JSON file and a JSON-lines
payment log with an fsync per payment — what a minimal home-made POS does.
"""

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA_DIR, machine, percentiles, progress, write_result
from sitegen import Scale, build, card_number

from drivers.sim import SimCardReader, SimDisplay, SimKeypad, SimKeypadControl, SimReaderControl
from models.cards import Genuineness, PresentedCard
from models.pos import PosPolicy
from models.wallet import Service
from terminal.clock import SetClock
from terminal.flows.pos import PosFlow, PosOutcome, PosSettings
from terminal.loop import TapLoop
from terminal.store import Store

TZ = ZoneInfo("Asia/Shanghai")
BREAKFAST = datetime(2026, 11, 23, 7, 0, tzinfo=TZ)
CANTEEN = "canteen-1"
RULES = (
    (
        "mp-b",
        "meal_period",
        {"canteen": CANTEEN, "name": "breakfast", "from": "06:30", "to": "09:00"},
    ),
    (
        "pr-b",
        "price",
        {
            "canteen": CANTEEN,
            "period": "breakfast",
            "mode": "fixed",
            "by_class": {"temporary": 800, "green": 200},
            "default": 300,
        },
    ),
    (
        "lim-red",
        "limit",
        {
            "class": "red",
            "per_tx": 20_000,
            "per_day": 50_000,
            "pin_free": 5_000,
            "offline_per_card_day": 10_000,
        },
    ),
    ("lim-gold", "limit", {"class": "gold", "per_tx": 50_000, "pin_free": 10_000}),
)


def add_pos_data(path: Path, holders: int) -> None:
    """Purses, services and canteen rules on a sitegen site (once; marked in sync_state)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if conn.execute("SELECT 1 FROM sync_state WHERE key = 'bench_pos_data'").fetchone():
            return
        progress("adding purses, services and rules to the site")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        conn.execute('UPDATE holders SET services = \'["meal","shop","barber"]\'')
        rng = random.Random(7)
        batch = []
        for n in range(holders):
            account = f"H{n:08d}"
            batch.append((account, "cash", rng.randrange(0, 200_000)))
            batch.append((account, "meal_subsidy", rng.randrange(0, 30_000)))
            if n % 10 == 0:
                batch.append((account, "work_meals", rng.randrange(0, 20)))
            if len(batch) >= 100_000:
                conn.executemany(
                    "INSERT INTO purses (account, purse, balance) VALUES (?, ?, ?)", batch
                )
                batch.clear()
        conn.executemany("INSERT INTO purses (account, purse, balance) VALUES (?, ?, ?)", batch)
        conn.executemany(
            "INSERT INTO rules (id, type, body) VALUES (?, ?, ?)",
            [(i, t, json.dumps(b)) for i, t, b in RULES],
        )
        conn.execute("INSERT INTO sync_state VALUES ('bench_pos_data', '1')")
        conn.execute("COMMIT")
    finally:
        conn.close()


def pos_flow(store: Store, clock: SetClock, reader: SimReaderControl) -> TapLoop:
    """The real POS flow on the real tap loop (unthreaded: this thread turns it)."""
    flow = PosFlow(
        settings=PosSettings(CANTEEN, Service.MEAL, PosPolicy(duplicate_window_s=0)), store=store
    )
    return TapLoop(
        flow,
        store=store,
        clock=clock,
        timezone=TZ,
        reader=SimCardReader(reader),
        keypad=SimKeypad(SimKeypadControl()),
        display=SimDisplay(),
        threaded=False,
    )


def tap(loop: TapLoop, reader: SimReaderControl, number: str, outcomes: list[PosOutcome]) -> int:
    """One customer: card on, payment, card off. Returns nanoseconds from tap to outcome."""
    before = len(outcomes)
    reader.present(PresentedCard(number, Genuineness.GENUINE, 1))
    started = time.perf_counter_ns()
    while len(outcomes) == before:
        loop.turn(0.5)
    elapsed = time.perf_counter_ns() - started
    reader.remove()
    loop.turn(0)
    return elapsed


def payment_core(path: Path, holders: int, taps: int) -> tuple[list[int], dict[str, int]]:
    store = Store.open(path)
    clock = SetClock(BREAKFAST)
    reader = SimReaderControl()
    flow = pos_flow(store, clock, reader)
    outcomes: list[PosOutcome] = []
    flow.flow.listeners.append(outcomes.append)  # type: ignore[arg-type]
    rng = random.Random(11)
    samples = []
    for _ in range(taps):
        clock.advance(timedelta(seconds=1))
        samples.append(tap(flow, reader, card_number(rng.randrange(holders)), outcomes))
    store.close()
    reasons: dict[str, int] = {}
    for outcome in outcomes:
        reasons[str(outcome.decision.reason)] = reasons.get(str(outcome.decision.reason), 0) + 1
    return samples, reasons


def lunch_rush(site: Scale, tills: int, taps: int, workdir: Path) -> tuple[list[int], float]:
    """``tills`` POS terminals with their own copy of a canteen-sized site, in parallel."""
    progress(f"lunch rush: {tills} POS terminals, {taps} taps")
    source, _ = build(site)
    add_pos_data(source, site.holders)
    flows = []
    for i in range(tills):
        copy = workdir / f"till-{i}.db"
        src = sqlite3.connect(source)
        dst = sqlite3.connect(copy)
        src.backup(dst)
        src.close()
        dst.close()
        store = Store.open(copy)
        clock = SetClock(BREAKFAST)
        reader = SimReaderControl()
        flow = pos_flow(store, clock, reader)
        outcomes: list[PosOutcome] = []
        flow.flow.listeners.append(outcomes.append)  # type: ignore[arg-type]
        flows.append((store, clock, reader, flow, outcomes))
    samples: list[list[int]] = [[] for _ in range(tills)]

    def serve(i: int) -> None:
        _, clock, reader, flow, outcomes = flows[i]
        rng = random.Random(100 + i)
        for _ in range(taps // tills):
            clock.advance(timedelta(seconds=1))
            number = card_number(rng.randrange(site.holders))
            samples[i].append(tap(flow, reader, number, outcomes))

    threads = [threading.Thread(target=serve, args=(i,)) for i in range(tills)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    for store, *_ in flows:
        store.close()
    return [s for per in samples for s in per], wall


def json_baseline(holders: int, taps: int, workdir: Path) -> list[int]:
    wallet = {card_number(n): {"cash": 100_000, "subsidy": 10_000} for n in range(holders)}
    wallet_file = workdir / "wallet.json"
    wallet_file.write_text(json.dumps(wallet))
    wallet = json.loads(wallet_file.read_text())
    rng = random.Random(11)
    samples = []
    with (workdir / "payments.jsonl").open("a", encoding="utf-8") as log:
        for _ in range(taps):
            number = card_number(rng.randrange(holders))
            started = time.perf_counter_ns()
            purses = wallet.get(number)
            paid = False
            if purses is not None and purses["subsidy"] + purses["cash"] >= 300:
                from_subsidy = min(300, purses["subsidy"])
                purses["subsidy"] -= from_subsidy
                purses["cash"] -= 300 - from_subsidy
                paid = True
            log.write(json.dumps({"card": number, "amount": 300, "paid": paid}) + "\n")
            log.flush()
            os.fsync(log.fileno())
            samples.append(time.perf_counter_ns() - started)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small site, finishes in < 1 min")
    args = parser.parse_args()
    site = Scale(10_000, 100_000) if args.quick else Scale(1_000_000, 10_000_000)
    rush_site = Scale(10_000, 100_000, seed=1)  # its own site: the payment core adds to `site`
    core_taps, rush_taps = (500, 400) if args.quick else (3000, 2000)

    progress(f"site: {site.holders:,} holders, {site.journal:,} journal rows")
    path, generation = build(site)
    add_pos_data(path, site.holders)
    progress("payment core")
    core, reasons = payment_core(path, site.holders, core_taps)
    with tempfile.TemporaryDirectory(dir=DATA_DIR, prefix="pos-") as scratch:
        baseline = json_baseline(site.holders if args.quick else 200_000, core_taps, Path(scratch))
        rush, wall = lunch_rush(rush_site, 4, rush_taps, Path(scratch))
    ours, base, rushed = percentiles(core), percentiles(baseline), percentiles(rush)
    result = {
        "benchmark": "pos",
        "command": " ".join(["bench/pos.py", *sys.argv[1:]]),
        "machine": machine(),
        "scale": {"holders": site.holders, "journal_rows": site.journal, "taps": core_taps},
        "generation_seconds": round(generation, 1),
        "payment_core": ours,
        "reasons": reasons,
        "baseline_json_wallet_fsync_log": base,
        "ratio_p50_over_baseline": round(ours["p50_ms"] / base["p50_ms"], 2),
        "ratio_p99_over_baseline": round(ours["p99_ms"] / base["p99_ms"], 2),
        "lunch_rush": {
            "tills": 4,
            "holders_per_till": rush_site.holders,
            "taps": len(rush),
            "wall_seconds": round(wall, 2),
            "taps_per_second": round(len(rush) / wall, 1),
            **rushed,
        },
        "target_p99_ms": 2.0,
    }
    out = write_result("pos", result)
    print(f"\nPOS payment (view + decide + commit) — {site.holders:,} holders, {core_taps} taps")
    print(f"{'':36}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, stats in (
        ("terminal payment core", ours),
        ("baseline: JSON wallet + fsync log", base),
        ("lunch rush, per tap (4 tills)", rushed),
    ):
        print(
            f"{label:36}{stats['p50_ms']:9.3f}{stats['p90_ms']:9.3f}{stats['p99_ms']:9.3f}"
            f"{stats['max_ms']:9.3f}"
        )
    print(
        f"ratio payment/baseline: p50 {result['ratio_p50_over_baseline']}×, "
        f"p99 {result['ratio_p99_over_baseline']}×"
    )
    print(
        f"lunch rush: {len(rush)} taps in {wall:.1f} s = {len(rush) / wall:.0f} taps/s "
        f"across 4 tills"
    )
    print(f"reasons: {reasons}")
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
