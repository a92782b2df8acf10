"""Start to ready, and resident memory, of the real daemon on a 1,000,000-holder site.

    .venv/bin/python bench/startup.py            # the 1,000,000-holder site of bench/sitegen.py
    .venv/bin/python bench/startup.py --quick    # the 10,000-holder site

Starts ``python -m terminal run`` (simulated reader and gate) on a copy-free view of the cached
site database, times spawn -> sd_notify READY=1 over a real notify socket, reads VmRSS once
ready, and stops it with SIGTERM. Baseline, same run: loading the same allowlist from a JSON file
into a dict, which is how a file-based controller starts (and what it then holds in memory).
"""

import argparse
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DATA_DIR, machine, progress, write_result
from sitegen import Scale, build, card_number

CONFIG = """
[terminal]
id = "bench-gate"
site = "bench"
state_dir = "{state}"
[store]
path = "{db}"
[diag]
enabled = false
[log]
level = "warning"
format = "json"
[door]
id = "door-0001"
[reader]
driver = "sim"
[gate]
driver = "sim"
"""


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_once(db: Path, work: Path) -> tuple[float, float]:
    notify_path = work / "notify.sock"
    notify_path.unlink(missing_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(notify_path))
        notify.settimeout(60)
        config = work / "bench.toml"
        config.write_text(CONFIG.format(state=work / "state", db=db))
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "terminal", "run", "--config", str(config)],
            env=os.environ | {"NOTIFY_SOCKET": str(notify_path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            while not notify.recv(4096).startswith(b"READY=1"):
                pass
            ready = time.perf_counter() - started
            memory = rss_mb(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    return ready, memory


def json_baseline(holders: int, work: Path) -> tuple[float, float]:
    path = work / "allowlist.json"
    path.write_text(
        json.dumps(
            {
                card_number(n): {"holder": f"H{n:08d}", "status": "active", "groups": ["g000"]}
                for n in range(holders)
            }
        )
    )
    code = (
        "import json, sys, time, resource; t = time.perf_counter(); "
        "d = json.load(open(sys.argv[1])); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), int(out[1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    site = Scale(10_000, 100_000) if args.quick else Scale(1_000_000, 10_000_000)
    db, _ = build(site)
    readies, memories, base_t, base_m = [], [], [], []
    with tempfile.TemporaryDirectory(dir=DATA_DIR, prefix="startup-") as scratch:
        work = Path(scratch)
        for run in range(args.runs):
            progress(f"run {run + 1}/{args.runs}")
            ready, memory = start_once(db, work)
            readies.append(ready)
            memories.append(memory)
            seconds, mb = json_baseline(site.holders, work)
            base_t.append(seconds)
            base_m.append(mb)
    result = {
        "benchmark": "startup",
        "command": " ".join(["bench/startup.py", *sys.argv[1:]]),
        "machine": machine(),
        "holders": site.holders,
        "start_to_ready_s": {
            "median": round(statistics.median(readies), 3),
            "max": round(max(readies), 3),
        },
        "rss_ready_mb": round(statistics.median(memories), 1),
        "baseline_json_load_s": round(statistics.median(base_t), 3),
        "baseline_json_peak_rss_mb": round(statistics.median(base_m), 1),
        "target_start_s": 3.0,
        "self_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    out = write_result("startup", result)
    print(
        f"\nstart to READY=1, {site.holders:,} holders: median "
        f"{result['start_to_ready_s']['median']} s (max {result['start_to_ready_s']['max']} s), "
        f"RSS {result['rss_ready_mb']} MB"
    )
    print(
        f"baseline, loading a JSON allowlist: {result['baseline_json_load_s']} s, "
        f"peak RSS {result['baseline_json_peak_rss_mb']} MB"
    )
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
