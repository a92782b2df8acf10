"""Snapshot sync of a whole site vs one message per holder, through a real mosquitto.

    .venv/bin/python bench/sync_snapshot.py            # 100,000 holders, 128-d templates
    .venv/bin/python bench/sync_snapshot.py --quick    # 10,000 holders (< 1 minute)

Measured: a new terminal (empty database) connecting to the broker until it has applied the
whole site — resync, HQ building the chunks, transfer, staging, hash check and the atomic swap.
Baseline, same run, same broker and disk: the esp-rfid style of sync, where HQ publishes every
holder (holder, card and template) as its own message and the terminal applies each in its own
durable transaction before acknowledging it. The baseline runs on a sample of the holders and is
compared as holders per second (the full 100,000 would take many minutes that way).
"""

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import paho.mqtt.client as mqtt
from common import DATA_DIR, machine, progress, write_result
from paho.mqtt.enums import CallbackAPIVersion
from sync_common import (
    TID,
    BenchTerminal,
    Mosquitto,
    build_site,
    start_broker,
    start_hq,
    terminal_settings,
)

from devtools.hq.db import HqDb
from devtools.mosquitto import wait_for
from sync.changes import parse_change
from terminal.store import Store
from terminal.store.sync_apply import Applier


def measure_snapshot(root: Path, db: HqDb, broker: Mosquitto) -> tuple[float, int, int]:
    # HQ runs as its own process, as it would on its own machine: it does not share our GIL.
    server = start_hq(db.root, broker.port)
    terminal = BenchTerminal(
        root / "terminal", terminal_settings(root / "terminal", db, broker.port), db
    )
    head = db.head_seq()
    try:
        started = time.monotonic()
        terminal.service.start()
        if not wait_for(lambda: terminal.port.marks().change_seq == head, 600, 0.05):
            raise RuntimeError("the terminal did not finish the snapshot")
        elapsed = time.monotonic() - started
        counts = terminal.store.counts()
    finally:
        terminal.close()
        server.terminate()
        server.wait(10)
    return elapsed, counts["holders"], counts["cards"]


def measure_per_holder(root: Path, db: HqDb, broker: Mosquitto, sample: int) -> float:
    """esp-rfid style: one message per holder, each applied durably before its PUBACK."""
    root.mkdir(parents=True, exist_ok=True)
    store = Store.open(root / "baseline.db")
    lines = {}
    for kind, key, text in db.conn.execute(
        "SELECT kind, key, line FROM state WHERE kind IN ('holder', 'card', 'face')"
    ):
        holder_id = key if kind != "card" else json.loads(text)["card"]["holder_id"]
        lines.setdefault(holder_id, []).append(json.loads(text))
    messages = [json.dumps(entries).encode() for _, entries in sorted(lines.items())[:sample]]
    done = threading.Event()
    applied = 0

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal applied
        with store.write() as conn:
            applier = Applier(conn, TID, live=True)
            for entry in json.loads(message.payload):
                applier.apply(parse_change(entry))
        client.ack(message.mid, message.qos)
        applied += 1
        if applied == len(messages):
            done.set()

    receiver = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="baseline-rx", manual_ack=True
    )
    receiver.on_message = on_message
    receiver.connect("127.0.0.1", broker.port)
    receiver.subscribe("baseline/holders", qos=1)
    receiver.loop_start()
    sender = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="baseline-tx")
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    time.sleep(0.5)
    started = time.monotonic()
    for payload in messages:
        sender.publish("baseline/holders", payload, qos=1)
    if not done.wait(1800):
        raise RuntimeError("baseline did not finish")
    elapsed = time.monotonic() - started
    for client in (sender, receiver):
        client.loop_stop()
        client.disconnect()
    store.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 holders, < 1 minute")
    parser.add_argument("--holders", type=int, default=None)
    parser.add_argument("--baseline-sample", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    args = parser.parse_args()
    holders = args.holders or (10_000 if args.quick else 100_000)
    sample = args.baseline_sample or (1_000 if args.quick else 5_000)
    snap_runs: list[float] = []
    base_runs: list[float] = []
    with tempfile.TemporaryDirectory(dir=DATA_DIR, prefix="sync-snapshot-") as scratch:
        root = Path(scratch)
        generated = time.monotonic()
        db = build_site(root / "hq", holders)
        generation = time.monotonic() - generated
        broker = start_broker(root)
        try:
            # Interleaved, so a noisy neighbour slows both alike; medians reported.
            for r in range(args.rounds):
                progress(f"round {r + 1}/{args.rounds}: snapshot of {holders:,} holders")
                snap_s, got_holders, got_cards = measure_snapshot(root / f"r{r}", db, broker)
                snap_runs.append(snap_s)
                progress(f"  applied in {snap_s:.1f} s; baseline on {sample:,} holders")
                base_runs.append(measure_per_holder(root / f"r{r}", db, broker, sample))
                progress(f"  baseline {base_runs[-1]:.1f} s")
        finally:
            broker.stop()
            db.close()
    snap_s, base_s = statistics.median(snap_runs), statistics.median(base_runs)
    ours_rate = holders / snap_s
    base_rate = sample / base_s
    result = {
        "benchmark": "sync_snapshot",
        "command": " ".join(["bench/sync_snapshot.py", *sys.argv[1:]]),
        "machine": machine(),
        "scale": {"holders": holders, "template_dim": 128, "baseline_sample": sample},
        "generation_seconds": round(generation, 1),
        "rounds": args.rounds,
        "snapshot_seconds_runs": [round(x, 2) for x in snap_runs],
        "snapshot_seconds_median": round(snap_s, 2),
        "snapshot_holders_per_s": round(ours_rate),
        "applied": {"holders": got_holders, "cards": got_cards},
        "baseline_seconds_runs": [round(x, 2) for x in base_runs],
        "baseline_holders_per_s": round(base_rate),
        "baseline_extrapolated_seconds_for_all": round(holders / base_rate, 1),
        "ratio_snapshot_over_baseline_rate": round(ours_rate / base_rate, 1),
        "target_seconds": 30,
        "target_ratio": 10,
    }
    out = write_result("sync_snapshot", result)
    print(f"\nsnapshot of {holders:,} holders (128-d templates), new terminal to applied")
    print(f"(median of {args.rounds} interleaved rounds; HQ in its own process)")
    print(f"{'':40}{'seconds':>10}{'holders/s':>12}")
    print(f"{'snapshot (chunks, staging, swap)':40}{snap_s:10.1f}{ours_rate:12,.0f}")
    print(f"{'baseline: one message per holder':40}{base_s:10.1f}{base_rate:12,.0f}  ({sample:,})")
    print(
        f"ratio {result['ratio_snapshot_over_baseline_rate']}× (target ≥ 10×); "
        f"target ≤ 30 s: {'met' if snap_s <= 30 else 'NOT met'}"
    )
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
