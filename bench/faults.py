"""Fault campaign: kill -9 of the daemon at random points under a stream of taps or payments.

    .venv/bin/python bench/faults.py kill9-door --cycles 1000
    .venv/bin/python bench/faults.py kill9-pos --cycles 1000

Each cycle starts `ykt run` on simulated devices (the reader fed from stdin), waits for READY=1,
feeds taps, and kills the process with SIGKILL after a random delay. After the last cycle a
clean start settles what the kills left, and the journal is checked against everything the
daemon said it did: the hash chain verifies, seq runs 1..N with no gap, every tap the daemon
logged as allowed is journalled as allowed under that seq, the outbox holds every record (no
HQ here, so nothing may have left it), no purse is negative, no payment has its pending debit
twice, and no opening is left without a passage record. Prints one JSON summary; exit 1 on any
violation. tests/faults/ runs a short form of each in the test suite.
"""

import argparse
import json
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from terminal.demo_site import card_number, seed  # noqa: E402
from terminal.store import Store  # noqa: E402

READY_TIMEOUT_S = 30.0

_TERMINAL = """
[terminal]
id = "fault-{kind}-01"
site = "demo-centre"
state_dir = "{state}"
[diag]
socket = "{state}/diag.sock"
[log]
level = "info"
format = "json"
[reader]
driver = "sim"
script = "-"
"""

_DEVICES = {
    "door": """
[door]
id = "east-gate"
direction = "in"
open_seconds = 1
[gate]
driver = "sim"
passage = "pass"
passage_delay_seconds = 0.05
""",
    "pos": """
[pos]
merchant = "shop-1"
service = "shop"
# Every tap a payment: the duplicate-tap prompt would hold most of the stream.
duplicate_window_seconds = 0
[keypad]
driver = "sim"
[display]
driver = "sim"
""",
}


def config_text(kind: str, state: Path) -> str:
    return _TERMINAL.format(kind=kind, state=state) + _DEVICES[kind]


@dataclass
class Campaign:
    kind: str
    cycles: int = 0
    fed: int = 0
    shown_allowed: dict[int, str] = field(default_factory=dict)  # seq -> log line's reason
    ready_s: list[float] = field(default_factory=list)
    crashes: int = 0  # exits nobody asked for
    violations: list[str] = field(default_factory=list)
    journal: dict[str, int] = field(default_factory=dict)  # "kind decision reason" -> count


def _feed(kind: str, rng: random.Random) -> str:
    # Mostly the demo site's cards that pass, with some that are refused in between.
    card = card_number(rng.choice((1, 1, 2, 2, 3, 4, 5, 6)))
    if kind == "door":
        return f"tap {card} seq=1\nwait 0.05\n"
    amount = rng.randint(100, 900)  # below every demo card's password-free limit
    return f"amount {amount}\ntap {card} seq=1\nwait 0.05\n"


def _wait_ready(notify: socket.socket, process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited {process.returncode} before READY=1")
        try:
            if notify.recv(4096).startswith(b"READY=1"):
                return time.monotonic() - started
        except TimeoutError:
            continue
    raise RuntimeError("no READY=1 within the start-up budget")


def _start(config: Path, notify_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ | {"NOTIFY_SOCKET": str(notify_path), "PYTHONPATH": str(ROOT)}
    env.pop("WATCHDOG_USEC", None)
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "terminal", "run", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=sink,
            env=env,
            cwd=config.parent,
        )


def _shown(log: Path, campaign: Campaign) -> None:
    """What the daemon said it allowed: every JSON log line "... allowed ..." with its seq."""
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = str(entry.get("message", entry.get("msg", "")))
        if " allowed " in f" {message} " and isinstance(entry.get("seq"), int):
            campaign.shown_allowed[int(entry["seq"])] = message.rsplit(" ", 1)[-1]


def run(kind: str, cycles: int, seed_value: int = 1, workdir: Path | None = None) -> Campaign:
    rng = random.Random(seed_value)
    campaign = Campaign(kind)
    with tempfile.TemporaryDirectory(prefix="ykt-faults-", dir=workdir) as scratch:
        root = Path(scratch)
        state = root / "state"
        store = Store.open(state / "terminal.db")
        seed(store)
        store.close()
        config = root / f"{kind}.toml"
        config.write_text(config_text(kind, state))
        notify_path = root / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        notify.settimeout(0.2)
        log = root / "daemon.log"
        try:
            for _ in range(cycles):
                process = _start(config, notify_path, log)
                try:
                    campaign.ready_s.append(_wait_ready(notify, process))
                    deadline = time.monotonic() + rng.uniform(0.05, 1.2)
                    assert process.stdin is not None
                    while time.monotonic() < deadline:
                        process.stdin.write(_feed(kind, rng).encode())
                        process.stdin.flush()
                        campaign.fed += 1
                        time.sleep(rng.uniform(0.0, 0.06))
                    if process.poll() is not None:
                        campaign.crashes += 1
                finally:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=10)
                campaign.cycles += 1
                if campaign.cycles % 100 == 0:
                    print(
                        f"{campaign.cycles} cycles, {campaign.fed} inputs fed",
                        file=sys.stderr,
                        flush=True,
                    )
            # A last, clean start settles what the kills left (unknown passages), then stops.
            process = _start(config, notify_path, log)
            try:
                campaign.ready_s.append(_wait_ready(notify, process))
            finally:
                process.terminate()
                if process.wait(timeout=30) != 0:
                    campaign.violations.append(f"clean stop exited {process.returncode}")
        finally:
            notify.close()
        _shown(log, campaign)
        _check(state / "terminal.db", campaign)
    return campaign


def _check(db: Path, campaign: Campaign) -> None:
    store = Store.open(db)
    try:
        broken = store.verify_journal()
        if broken is not None:
            campaign.violations.append(f"hash chain broken: {broken}")
        with store.read() as conn:
            _check_rows(conn, campaign)
    finally:
        store.close()


def _check_rows(conn: sqlite3.Connection, campaign: Campaign) -> None:
    seqs = [int(s) for (s,) in conn.execute("SELECT seq FROM journal ORDER BY seq")]
    if seqs != list(range(1, len(seqs) + 1)):
        campaign.violations.append("journal seq has gaps")
    journalled = {
        int(seq): (decision, reason)
        for seq, decision, reason in conn.execute("SELECT seq, decision, reason FROM journal")
    }
    for kind, decision, reason, count in conn.execute(
        "SELECT kind, decision, reason, count(*) FROM journal GROUP BY kind, decision, reason"
    ):
        campaign.journal[f"{kind} {decision} {reason}"] = int(count)
    for seq, reason in campaign.shown_allowed.items():
        if journalled.get(seq, ("", ""))[0] != "allow":
            campaign.violations.append(f"shown allowed ({reason}) but not journalled: seq {seq}")
    queued = {int(r) for (r,) in conn.execute("SELECT ref FROM outbox WHERE topic = 'tx'")}
    if queued != set(seqs):
        campaign.violations.append(f"outbox misses {len(set(seqs) - queued)} records")
    negative = conn.execute("SELECT count(*) FROM purses WHERE balance < 0").fetchone()[0]
    if negative:
        campaign.violations.append(f"{negative} purses negative")
    doubled = conn.execute(
        "SELECT count(*) FROM (SELECT tx_id, purse FROM pending_debits GROUP BY tx_id, purse "
        "HAVING count(*) > 1)"
    ).fetchone()[0]
    if doubled:
        campaign.violations.append(f"{doubled} pending debits doubled")
    owed = conn.execute("SELECT count(*) FROM awaiting_passage").fetchone()[0]
    if owed:
        campaign.violations.append(f"{owed} openings without a passage record")


def summary(campaign: Campaign) -> dict[str, Any]:
    ready = sorted(campaign.ready_s)
    return {
        "scenario": f"kill9-{campaign.kind}",
        "cycles": campaign.cycles,
        "inputs_fed": campaign.fed,
        "shown_allowed": len(campaign.shown_allowed),
        "crashes": campaign.crashes,
        "violations": campaign.violations,
        "journal": campaign.journal,
        "ready_median_s": round(statistics.median(ready), 3) if ready else None,
        "ready_p95_s": round(ready[int(0.95 * (len(ready) - 1))], 3) if ready else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["kill9-door", "kill9-pos"])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles must be at least 1")
    result = summary(run(args.scenario.removeprefix("kill9-"), args.cycles, args.seed))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if result["violations"] or result["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
