"""Wall-clock steps under the running daemon: back 1 h and forward 1 day between taps.

The daemon runs with `wallshift.so` preloaded (wallshift.c here, compiled with the system's C
compiler), which shifts every wall-clock read of the process (Python, SQLite, logging) by an
amount this harness writes into a mapped file, and leaves monotonic time alone: the step hits
the daemon as a real one would, without a seam in the daemon. Then:

- door (hard anti-passback): a card admitted, the clock set back 1 h, the same card again at
  once must be refused (`anti_passback`), and forward 1 day the earlier passage has run out;
- till (duplicate guard on): a payment, the clock set back 1 h, the same card and amount again
  must ask for confirmation (`duplicate_tap`) instead of charging;
- after both: the hash chain verifies and seq runs 1..N with no gap.
"""

import argparse
import json
import mmap
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.faults.harness import (
    demo_terminal,
    log_entries,
    notify_socket,
    read_only,
    start,
    wait_ready,
)
from terminal.store import journal
from tests.fixtures import card_number

HOUR_NS = 3600 * 10**9
DAY_NS = 24 * HOUR_NS
WAIT_S = 15.0


def build_shim(directory: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler for wallshift.so (./dev setup installs gcc)")
    shim = directory / "wallshift.so"
    source = Path(__file__).with_name("wallshift.c")
    subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-o", str(shim), str(source), "-ldl"],
        check=True,
        timeout=120,
    )
    return shim


class WallShift:
    """The shared 8 bytes the shim reads on every wall-clock call."""

    def __init__(self, path: Path) -> None:
        path.write_bytes(struct.pack("=q", 0))
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), 8)

    def set(self, ns: int) -> None:
        self._map[:8] = struct.pack("=q", ns)

    def close(self) -> None:
        self._map.close()
        self._file.close()


def _await(log: Path, seen: int, predicate: Any) -> dict[str, Any]:
    """The first log entry after the first ``seen`` ones that ``predicate`` accepts."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for entry in list(log_entries(log))[seen:]:
            if predicate(entry):
                return entry
        time.sleep(0.05)
    last = [str(e.get("message")) for e in list(log_entries(log))[seen:]][-5:]
    raise RuntimeError(f"the daemon did not answer within the wait; it said {last}")


DUPLICATE_PROMPT = "display: 刚刚已扣款"


def _decided(entry: dict[str, Any]) -> bool:
    words = str(entry.get("message", "")).split()
    return len(words) == 3 and words[1] in ("allowed", "denied") and "seq" in entry


def _decision(entry: dict[str, Any]) -> bool:
    return _decided(entry) or str(entry.get("message", "")).startswith(DUPLICATE_PROMPT)


def _time_rules_on(text: str) -> str:
    text = text.replace('direction = "in"', 'direction = "in"\nanti_passback = "hard"')
    return text.replace("duplicate_window_seconds = 0", "duplicate_window_seconds = 10")


def scenario(kind: str, workdir: Path | None = None) -> dict[str, Any]:
    violations: list[str] = []
    steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ykt-faults-", dir=workdir) as scratch:
        root = Path(scratch)
        state, config = demo_terminal(root, kind, _time_rules_on)
        shift = WallShift(root / "wallshift")
        env = {"LD_PRELOAD": str(build_shim(root)), "WALLSHIFT_FILE": str(root / "wallshift")}
        log = root / "daemon.log"
        card = card_number(1)
        tap = f"tap {card} seq=1\n" if kind == "door" else f"amount 5\ntap {card} seq=1\n"
        plan = [("now", 0), ("back 1 h", -HOUR_NS), ("forward 1 day", DAY_NS)]
        with notify_socket(root / "notify.sock") as notify:
            process = start(config, notify.getsockname(), log, extra_env=env)
            try:
                wait_ready(notify, process)
                assert process.stdin is not None
                for label, ns in plan:
                    shift.set(ns)
                    seen = len(list(log_entries(log)))
                    process.stdin.write(tap.encode())
                    process.stdin.flush()
                    entry = _await(log, seen, _decision)
                    if str(entry["message"]).startswith(DUPLICATE_PROMPT):
                        # Declined: the journal then says so, and nothing is charged.
                        seen = len(list(log_entries(log)))
                        process.stdin.write(b"cancel\n")
                        process.stdin.flush()
                        entry = _await(log, seen, _decided)
                        entry["message"] = "duplicate prompt, then " + str(entry["message"])
                    steps.append(
                        {"clock": label, "decision": entry["message"], "seq": entry["seq"]}
                    )
                    time.sleep(1.5)  # the gate closes and the passage is journalled
                if process.poll() is not None:
                    violations.append(f"the daemon exited {process.returncode} by itself")
            finally:
                process.send_signal(signal.SIGTERM)
                stopped = process.wait(timeout=30)
                shift.close()
        if stopped != 0:
            violations.append(f"stop exited {stopped}")
        expected = {
            "door": ["tap allowed allowed", "tap denied anti_passback", "tap allowed allowed"],
            "pos": [
                "shop allowed allowed",
                "duplicate prompt, then shop denied cancelled_by_user",
                "shop allowed allowed",
            ],
        }[kind]
        said = [step["decision"] for step in steps]
        if said != expected:
            violations.append(f"decisions {said}, expected {expected}")
        with closing(read_only(state / "terminal.db")) as conn:
            broken = journal.verify(conn)
            if broken is not None:
                violations.append(f"hash chain broken: {broken}")
            seqs = [int(s) for (s,) in conn.execute("SELECT seq FROM journal ORDER BY seq")]
            if seqs != list(range(1, len(seqs) + 1)):
                violations.append(f"journal seq has gaps: {seqs[:20]}")
            for step in steps:
                (at,) = conn.execute(
                    "SELECT at FROM journal WHERE seq = ?", (step["seq"],)
                ).fetchone()
                step["at"] = at
        violations += _stepped(steps)
        if "Traceback" in log.read_text(encoding="utf-8", errors="replace"):
            violations.append("a traceback in the daemon's output")
    return {"scenario": f"clock-jumps {kind}", "steps": steps, "violations": violations}


def _stepped(steps: list[dict[str, Any]]) -> list[str]:
    """The journal's own times show the steps, or the shim never reached the daemon."""
    if len(steps) != 3:
        return []
    first, back, ahead = (
        datetime.fromisoformat(str(s["at"]).replace("Z", "+00:00")) for s in steps
    )
    wrong = []
    if not -3600 <= (back - first).total_seconds() <= -3500:
        wrong.append(f"the record after the step back is stamped {back}, the first {first}")
    if not 86400 <= (ahead - first).total_seconds() <= 86500:
        wrong.append(f"the record after the step forward is stamped {ahead}, the first {first}")
    return wrong


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults clock-jumps")
    parser.parse_args(argv)
    results = [scenario(kind) for kind in ("door", "pos")]
    print(json.dumps(results, ensure_ascii=False, indent=2))
    return 1 if any(r["violations"] for r in results) else 0
