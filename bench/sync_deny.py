"""Deny (lost card) propagation: card office action at HQ -> the terminal denies that card.

    .venv/bin/python bench/sync_deny.py            # 300 idle + 20 loaded denies
    .venv/bin/python bench/sync_deny.py --quick    # 60 idle + 5 loaded (< 1 minute)

Each sample: the card office marks a card lost in HQ's database (``Office.set_status``); ``ykt hq
serve`` (its own process) notices it, publishes the deny and the change; the terminal applies it.
Measured from just before the office's write to the moment the terminal's database says
``lost``, polled every millisecond. Loaded: the same while the terminal is busy applying a
backlog of 10,000 ledger changes. The baseline, measured in the same run on the same events, is
what a sync without a priority lane would give: the moment the change log itself brings the
entry (the terminal's applied seq reaches it).
"""

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA_DIR, machine, percentiles, progress, write_result
from sync_common import (
    BenchTerminal,
    build_site,
    card_number,
    start_broker,
    start_hq,
    terminal_settings,
)

from devtools.hq.db import HqDb
from devtools.hq.office import Office
from devtools.mosquitto import wait_for


def _status(terminal: BenchTerminal, number: str) -> str | None:
    with terminal.store.read() as conn:
        row = conn.execute("SELECT status FROM cards WHERE number = ?", (number,)).fetchone()
    return None if row is None else str(row[0])


def one_deny(office: Office, terminal: BenchTerminal, n: int) -> tuple[int, int]:
    """(ns until the card is denied, ns until the change log brought the same entry)."""
    number = card_number(n)
    started = time.perf_counter_ns()
    seq = office.set_status(number, "lost")
    denied = logged = 0
    deadline = time.monotonic() + 60
    while (not denied or not logged) and time.monotonic() < deadline:
        now = time.perf_counter_ns()
        if not denied and _status(terminal, number) == "lost":
            denied = now - started
        if not logged and terminal.port.marks().change_seq >= seq:
            logged = now - started
        time.sleep(0.001)
    if not denied or not logged:
        raise RuntimeError(f"card {n} was not denied within 60 s")
    return denied, logged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, < 1 minute")
    args = parser.parse_args()
    idle_n, loaded_n = (60, 5) if args.quick else (300, 20)
    rng = random.Random(7)
    idle_deny: list[int] = []
    idle_log: list[int] = []
    load_deny: list[int] = []
    load_log: list[int] = []
    with tempfile.TemporaryDirectory(dir=DATA_DIR, prefix="sync-deny-") as scratch:
        root = Path(scratch)
        db = build_site(root / "hq", idle_n + loaded_n + 100, faces=False)
        broker = start_broker(root)
        hq = start_hq(db.root, broker.port)
        terminal = BenchTerminal(root / "t", terminal_settings(root / "t", db, broker.port), db)
        office = Office(HqDb(db.root))
        try:
            terminal.service.start()
            if not wait_for(lambda: terminal.port.marks().change_seq == db.head_seq(), 120):
                raise RuntimeError("the terminal did not sync")
            progress(f"idle: {idle_n} denies")
            for n in range(idle_n):
                deny, log = one_deny(office, terminal, n)
                idle_deny.append(deny)
                idle_log.append(log)
                time.sleep(rng.uniform(0.02, 0.1))
            progress(f"loaded: {loaded_n} denies, each behind 10,000 ledger changes")
            for n in range(idle_n, idle_n + loaded_n):
                with office.db.tx() as conn:
                    for _ in range(10_000):
                        office.post(conn, "H00000001", "cash", 1, "topup")
                deny, log = one_deny(office, terminal, n)
                load_deny.append(deny)
                load_log.append(log)
                wait_for(lambda: terminal.port.marks().change_seq == office.db.head_seq(), 120)
        finally:
            terminal.close()
            hq.terminate()
            hq.wait(10)
            broker.stop()
            office.db.close()
            db.close()
    result = {
        "benchmark": "sync_deny",
        "command": " ".join(["bench/sync_deny.py", *sys.argv[1:]]),
        "machine": machine(),
        "idle_deny": percentiles(idle_deny),
        "idle_change_log": percentiles(idle_log),
        "loaded_deny": percentiles(load_deny),
        "loaded_change_log": percentiles(load_log),
        "ratio_p50_loaded_log_over_deny": round(
            percentiles(load_log)["p50_ms"] / percentiles(load_deny)["p50_ms"], 1
        ),
        "target_p99_ms": 1000,
    }
    out = write_result("sync_deny", result)
    print("\ndeny propagation, card office -> terminal denies (HQ polls its database every 50 ms)")
    print(f"{'':38}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for label, key in (
        ("idle: priority deny", "idle_deny"),
        ("idle: change log (baseline)", "idle_change_log"),
        ("loaded: priority deny", "loaded_deny"),
        ("loaded: change log (baseline)", "loaded_change_log"),
    ):
        stats = result[key]
        print(
            f"{label:38}{stats['p50_ms']:9.1f}{stats['p90_ms']:9.1f}{stats['p99_ms']:9.1f}"
            f"{stats['max_ms']:9.1f}"
        )
    worst = max(result["idle_deny"]["p99_ms"], result["loaded_deny"]["p99_ms"])
    print(
        f"loaded: the deny lane is {result['ratio_p50_loaded_log_over_deny']}× faster than the "
        f"log (p50); target p99 ≤ 1 s: {'met' if worst <= 1000 else 'NOT met'}"
    )
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
