"""Outbox drain after an outage: queued transactions until HQ has acknowledged them all.

    .venv/bin/python bench/sync_outbox.py            # 100,000 queued transactions
    .venv/bin/python bench/sync_outbox.py --quick    # 10,000 (< 1 minute)

The terminal's journal holds N sealed records (half door passages, half meal payments with a
pending debit each), all in the outbox, as after a long broker outage. Measured: from the sync
service starting until the outbox is empty — every record sent in batches, stored by ``ykt hq
serve`` (its own process) with dedupe and ledger posting in one transaction per batch, and
acknowledged by ``txack``. HQ's debits come back as ledger changes and are applied meanwhile.
Baseline, same run: the same code sending one record per message (``tx_batch = 1``, 20 in
flight), as a terminal that uploads each transaction on its own would, on a sample of N.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA_DIR, machine, progress, write_result
from sync_common import (
    BenchTerminal,
    Mosquitto,
    build_site,
    card_number,
    start_broker,
    start_hq,
    terminal_settings,
)

from devtools.hq.db import HqDb
from devtools.mosquitto import wait_for
from models.canonical import ZERO_HASH
from models.journal import TransactionDraft
from models.reasons import Reason
from terminal.store import journal


def fill_outbox(terminal: BenchTerminal, count: int, holders: int) -> float:
    started = time.monotonic()
    prev, seq = ZERO_HASH, 0
    store = terminal.store
    while seq < count:
        with store.write() as conn:
            for _ in range(min(10_000, count - seq)):
                seq += 1
                n = seq % holders
                at = f"2026-11-23T{7 + seq % 12:02d}:{seq % 60:02d}:00+08:00"
                if seq % 2:
                    draft = TransactionDraft(
                        "door", at, seq, "card", "allow", Reason.ALLOWED, 1,
                        card=card_number(n), holder_id=f"H{n:08d}", door="door-01",
                    )  # fmt: skip
                else:
                    draft = TransactionDraft(
                        "meal", at, seq, "card", "allow", Reason.ALLOWED, 1,
                        card=card_number(n), holder_id=f"H{n:08d}", amount=1,
                        split=(("cash", 1),),
                    )  # fmt: skip
                committed = journal.append(
                    conn, draft, seq=seq, tx_id=f"tx{seq:09d}", prev_hash=prev
                )
                prev = committed.hash
                if draft.kind == "meal":
                    conn.execute(
                        "INSERT INTO pending_debits (tx_id, tx_seq, account, purse, amount, at) "
                        "VALUES (?, ?, ?, 'cash', 1, ?)",
                        (committed.id, seq, draft.holder_id, "2026-11-23T04:00:00Z"),
                    )
    return time.monotonic() - started


def drain(root: Path, db: HqDb, broker: Mosquitto, count: int, **settings: int) -> float:
    terminal = BenchTerminal(root, terminal_settings(root, db, broker.port, **settings), db)
    try:
        generation = fill_outbox(terminal, count, 1000)
        progress(f"  {count:,} transactions queued in {generation:.1f} s")
        started = time.monotonic()
        terminal.service.start()
        if not wait_for(lambda: terminal.port.outbox_stats().tx_backlog == 0, 3600, 0.05):
            raise RuntimeError("the outbox did not drain")
        return time.monotonic() - started
    finally:
        terminal.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 transactions, < 1 minute")
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    sample = 2_000 if args.quick else 10_000
    with tempfile.TemporaryDirectory(dir=DATA_DIR, prefix="sync-outbox-") as scratch:
        root = Path(scratch)
        db = build_site(root / "hq", 1000, faces=False)
        broker = start_broker(root)
        hq = start_hq(db.root, broker.port)
        try:
            progress(f"batched drain of {count:,}")
            ours = drain(root / "batched", db, broker, count, tx_batch=500, tx_window=4)
            progress(f"  drained in {ours:.1f} s; baseline: one record per message, {sample:,}")
            # A second terminal id, so HQ's dedupe does not make the baseline's work free.
            base = drain(
                root / "single", db, broker, sample, tx_batch=1, tx_window=20, tid="bench-t2"
            )
            progress(f"  baseline drained in {base:.1f} s")
        finally:
            hq.terminate()
            hq.wait(10)
            broker.stop()
            db.close()
    ours_rate, base_rate = count / ours, sample / base
    result = {
        "benchmark": "sync_outbox",
        "command": " ".join(["bench/sync_outbox.py", *sys.argv[1:]]),
        "machine": machine(),
        "scale": {"transactions": count, "baseline_sample": sample},
        "drain_seconds": round(ours, 2),
        "tx_per_s": round(ours_rate),
        "baseline_seconds": round(base, 2),
        "baseline_tx_per_s": round(base_rate),
        "ratio": round(ours_rate / base_rate, 1),
        "target_tx_per_s": 2000,
    }
    out = write_result("sync_outbox", result)
    print(f"\noutbox drain: {count:,} queued transactions to HQ's txack (HQ in its own process)")
    print(f"{'':44}{'seconds':>9}{'tx/s':>9}")
    print(f"{'batched (500 a message, 4 in flight)':44}{ours:9.1f}{ours_rate:9,.0f}")
    print(f"{f'baseline: one per message ({sample:,})':44}{base:9.1f}{base_rate:9,.0f}")
    print(
        f"ratio {result['ratio']}×; target ≥ 2,000 tx/s: "
        f"{'met' if ours_rate >= 2000 else 'NOT met'}"
    )
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
