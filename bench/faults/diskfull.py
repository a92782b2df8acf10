"""A full disk under the running daemon: a small real filesystem made for the campaign, filled.

The daemon's state directory lives on a tmpfs of a few tens of MB mounted for the campaign, so it
needs root (or CAP_SYS_ADMIN), as the terminal's own service has on the board.
Taps (door) or amount + tap pairs (till) are fed on its stdin through four phases:

1. before: the disk has room;
2. full: a filler file takes every free byte, then taps go on;
3. recovered: the filler is removed, taps go on in the same daemon, no restart;
4. full again, and SIGTERM: the daemon must exit 0.

Then a clean start on the freed disk settles what the full disk left (an admission whose passage
could not be recorded), and the journal is checked with the kill -9 campaign's checker: every
decision shown as allowed or paid is in the journal, the hash chain verifies, seq has no gap,
the outbox is complete, every admission has one passage record. Beyond that:

- while full the gate never opened for a tap that was not recorded (openings the simulated gate
  logged against admissions journalled), the till never showed "Paid" unrecorded, and at least
  one tap was refused as "not recorded" (else the disk was never full for the daemon);
- `ykt diag status` said `store_failed` with the count of refused taps while full, and no longer
  once space was back;
- after the space came back, taps were admitted or paid again without a restart;
- the daemon stayed up throughout, no traceback, and `PRAGMA integrity_check` says ok.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.faults import kill9
from bench.faults.harness import (
    demo_terminal,
    diag_status,
    log_entries,
    notify_socket,
    problems,
    read_only,
    settle,
    start,
    wait_ready,
)
from tests.fixtures import card_number

FS_BYTES = 48 * 1024 * 1024  # above diag's "disk full" line once the filler is gone
OPENED = "sim gate: opened"
PAID = kill9.PAID


class SmallFilesystemError(RuntimeError):
    """Mounting a tmpfs is not allowed here."""


@contextmanager
def small_filesystem(path: Path, size: int = FS_BYTES) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes at ``path`` for as long as the block runs (needs root)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise SmallFilesystemError(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(directory: Path) -> int:
    """Take every free byte of the filesystem; returns how many the filler holds."""
    written = 0
    with (directory / "filler").open("ab", buffering=0) as filler:
        for chunk in (1 << 20, 1 << 12, 1 << 9, 1):
            block = b"\0" * chunk
            try:
                while True:
                    written += filler.write(block)
            except OSError:
                continue  # ENOSPC: on to smaller pieces, until not even one byte fits
    return written


def free(directory: Path) -> None:
    (directory / "filler").unlink(missing_ok=True)


@dataclass
class Phase:
    name: str
    fed: int = 0
    allowed: int = 0  # decisions logged as allowed (each one after its commit)
    not_recorded: int = 0  # refused because the record could not be written
    openings: int = 0
    paid: int = 0
    diag: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    kind: str
    phases: list[Phase] = field(default_factory=list)
    sigterm_exit: int | None = None
    violations: list[str] = field(default_factory=list)
    campaign: kill9.Campaign | None = None
    integrity: str = ""


def _feed(kind: str, rng: random.Random) -> str:
    card = card_number(rng.choice((1, 2, 3, 4)))
    if kind == "door":
        return f"tap {card} seq=1\nwait 0.1\n"
    return f"amount {rng.randint(1, 30)}\ntap {card} seq=1\nwait 0.1\n"


def _tally(entries: list[dict[str, Any]], phase: Phase) -> None:
    for entry in entries:
        message = str(entry.get("message", ""))
        words = message.split()
        if len(words) == 3 and words[1] == "allowed":
            phase.allowed += 1
        elif "not recorded, " in message:
            phase.not_recorded += 1
        elif message.startswith(OPENED):
            phase.openings += 1
        elif message.startswith(PAID):
            phase.paid += 1


def scenario(
    kind: str, taps: int = 40, seed: int = 1, workdir: Path | None = None
) -> dict[str, Any]:
    rng = random.Random(seed)
    outcome = Outcome(kind)
    with tempfile.TemporaryDirectory(prefix="ykt-diskfull-", dir=workdir) as scratch:
        root = Path(scratch)
        log = root / "daemon.log"  # off the small filesystem: the log must survive it filling
        with small_filesystem(root / "small") as small:
            state, config = demo_terminal(small, kind)
            with notify_socket(root / "notify.sock") as notify:
                _run(kind, config, small, notify, root / "notify.sock", log, taps, rng, outcome)
                free(small)
                kill9._mark(log, 2)
                code = settle(config, root / "notify.sock", notify, log)
                if code != 0:
                    outcome.violations.append(f"the settling run exited {code}")
            _check(state / "terminal.db", log, outcome)
    return _summary(outcome)


def _run(
    kind: str,
    config: Path,
    small: Path,
    notify: Any,
    notify_path: Path,
    log: Path,
    taps: int,
    rng: random.Random,
    outcome: Outcome,
) -> None:
    kill9._mark(log, 1)
    daemon = start(config, notify_path, log)
    try:
        wait_ready(notify, daemon)
        for name, before in (("before", None), ("full", fill), ("recovered", free)):
            if before is not None:
                before(small)
            outcome.phases.append(_phase(name, kind, daemon, config, log, taps, rng))
        fill(small)
        daemon.stdin.write(_feed(kind, rng).encode())  # type: ignore[union-attr]
        daemon.stdin.flush()  # type: ignore[union-attr]
        time.sleep(0.5)
        if daemon.poll() is not None:
            outcome.violations.append(f"the daemon died on a full disk: exit {daemon.returncode}")
        daemon.send_signal(signal.SIGTERM)
        outcome.sigterm_exit = daemon.wait(30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)


def _phase(
    name: str,
    kind: str,
    daemon: subprocess.Popen[bytes],
    config: Path,
    log: Path,
    taps: int,
    rng: random.Random,
) -> Phase:
    phase = Phase(name)
    seen = sum(1 for _ in log_entries(log))
    assert daemon.stdin is not None
    for _ in range(taps):
        daemon.stdin.write(_feed(kind, rng).encode())
        phase.fed += 1
    daemon.stdin.flush()
    # Each input is decided within its 0.1 s wait; the margin covers a slow, full disk.
    time.sleep(taps * 0.1 + 2.0)
    # On a full disk a commit can still succeed: once a checkpoint has emptied the WAL, SQLite
    # writes over its old pages without growing the file. diag says store_failed while the last
    # commit failed, so a full phase is looked at once its last input was refused.
    for _ in range(20 if name == "full" else 0):
        if _last_refused(list(log_entries(log))[seen:]):
            break
        daemon.stdin.write(_feed(kind, rng).encode())
        daemon.stdin.flush()
        phase.fed += 1
        time.sleep(0.5)
    phase.diag = diag_status(config)
    _tally(list(log_entries(log))[seen:], phase)
    return phase


def _last_refused(entries: list[dict[str, Any]]) -> bool:
    """Whether the last input decided was refused for want of a record."""
    for entry in reversed(entries):
        message = str(entry.get("message", ""))
        words = message.split()
        if "not recorded, " in message:
            return True
        if len(words) == 3 and words[1] in ("allowed", "denied"):
            return False
    return False


def _check(db: Path, log: Path, outcome: Outcome) -> None:
    campaign = kill9.Campaign(outcome.kind)
    kill9.read_log(log, campaign)
    kill9.check(db, campaign)
    outcome.campaign = campaign
    outcome.violations += campaign.violations
    with closing(read_only(db)) as conn:
        outcome.integrity = str(conn.execute("PRAGMA integrity_check").fetchone()[0])
        admissions = conn.execute(
            "SELECT count(*) FROM journal WHERE kind = 'door' AND decision = 'allow'"
        ).fetchone()[0]
    if outcome.integrity != "ok":
        outcome.violations.append(f"integrity_check: {outcome.integrity}")
    if "Traceback" in log.read_text(encoding="utf-8", errors="replace"):
        outcome.violations.append("a traceback in the daemon's output")
    check_phases(outcome, int(admissions))


def check_phases(outcome: Outcome, admissions: int) -> None:
    """What the phases showed: refusals while full, a gate shut to unrecorded taps, diag's
    store-failure state, service again without a restart, and a clean SIGTERM."""
    if outcome.sigterm_exit != 0:
        outcome.violations.append(f"SIGTERM on a full disk: exit {outcome.sigterm_exit}")
    by_name = {p.name: p for p in outcome.phases}
    full, recovered = by_name.get("full"), by_name.get("recovered")
    if full is None or recovered is None:
        outcome.violations.append("the campaign did not reach every phase")
        return
    if full.not_recorded == 0:
        outcome.violations.append("no tap refused while full: the disk never filled for it")
    opened = sum(p.openings for p in outcome.phases)
    if outcome.kind == "door" and opened > admissions:
        outcome.violations.append(f"the gate opened {opened} times for {admissions} admissions")
    database = full.diag.get("database", {})
    failing = database.get("store_failed") if isinstance(database, dict) else None
    if full.diag.get("mode") != "store_failed" or not failing:
        outcome.violations.append(
            f"diag while full: {full.diag.get('mode')}, {problems(full.diag)}"
        )
    if recovered.allowed == 0:
        outcome.violations.append("nothing allowed after the space came back, without a restart")
    if recovered.diag.get("mode") == "store_failed":
        outcome.violations.append("diag still says store_failed after the space came back")


def _summary(outcome: Outcome) -> dict[str, Any]:
    campaign = outcome.campaign
    return {
        "scenario": f"disk-full-{outcome.kind}",
        "filesystem_bytes": FS_BYTES,
        "phases": [
            {
                "phase": p.name,
                "fed": p.fed,
                "allowed_shown": p.allowed,
                "refused_not_recorded": p.not_recorded,
                "gate_openings": p.openings,
                "paid_shown": p.paid,
                "diag_mode": p.diag.get("mode"),
                "diag_level": p.diag.get("level"),
                "diag_problems": problems(p.diag),
            }
            for p in outcome.phases
        ],
        "sigterm_while_full_exit": outcome.sigterm_exit,
        "journal": campaign.journal if campaign else {},
        "integrity_check": outcome.integrity,
        "violations": outcome.violations,
    }


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults disk-full", description=__doc__)
    parser.add_argument("kind", choices=["door", "pos"])
    parser.add_argument("--taps", type=int, default=40, help="inputs fed in each phase")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.taps < 5:
        parser.error("--taps must be at least 5")
    if os.geteuid() != 0:
        parser.error("needs root (to mount a small tmpfs)")
    result = scenario(args.kind, args.taps, args.seed)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
