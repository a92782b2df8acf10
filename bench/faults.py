"""Fault campaign: the real daemon killed at random points, and started on a damaged database.

    .venv/bin/python -m bench.faults kill9-door --cycles 1000 --seed 11
    .venv/bin/python -m bench.faults kill9-pos --cycles 1000 --seed 12
    .venv/bin/python -m bench.faults corrupt-db

kill9-*: each cycle starts `ykt run` on simulated devices (the reader fed from stdin), waits for
READY=1, feeds taps (door) or amount + tap pairs (shop till), and sends SIGKILL after a random
delay. A last, clean start settles what the kills left. Then the journal, read through a
read-only connection, is checked against everything the daemon said it did (its JSON log).

corrupt-db: a database with a journal several pages deep is damaged (pages overwritten, truncated
to nothing, replaced by a file that is not SQLite); the daemon must reach READY=1, quarantine the
file, and `ykt diag status` must say so. What the quarantined file still holds is counted.

Prints one JSON summary; exit 1 on any violation. tests/faults/ runs a short form of each.
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
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.cards import mask_card_number  # noqa: E402
from models.journal import TransactionDraft  # noqa: E402
from models.reasons import Reason  # noqa: E402
from terminal.demo_site import card_number, seed  # noqa: E402
from terminal.store import Store, journal, salvage  # noqa: E402
from terminal.store.schema import quarantined_files  # noqa: E402

READY_TIMEOUT_S = 30.0
PAGE = 4096
PAID = "display: 支付成功 Paid"

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


@dataclass(frozen=True)
class Shown:
    """One decision the daemon logged as allowed, after its commit."""

    cycle: int
    kind: str
    reason: str
    card: str  # masked, as logged
    amount: int | None = None


@dataclass
class Campaign:
    kind: str
    seed: int = 0
    cycles: int = 0
    taps: int = 0
    paid_shown: int = 0  # "支付成功 Paid" screens
    shown_allowed: dict[int, Shown] = field(default_factory=dict)  # by journal seq
    ready_first_s: float | None = None
    ready_after_kill_s: list[float] = field(default_factory=list)
    crashes: int = 0  # exits nobody asked for
    violations: list[str] = field(default_factory=list)
    journal: dict[str, int] = field(default_factory=dict)  # "kind decision reason" -> count


def _feed(kind: str, rng: random.Random) -> str:
    # Mostly the demo site's cards that pass, with some that are refused in between.
    card = card_number(rng.choice((1, 1, 2, 2, 3, 4, 5, 6)))
    if kind == "door":
        return f"tap {card} seq=1\nwait 0.05\n"
    amount = rng.randint(1, 30)  # fen: far below the password-free limit, and purses last
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
    # A kill -9 campaign without a watchdog: systemd's restart is what the loop here stands for.
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


@contextmanager
def _notify_socket(path: Path) -> Iterator[socket.socket]:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(path))
    notify.settimeout(0.2)
    try:
        yield notify
    finally:
        notify.close()


def _mark(log: Path, cycle: int) -> None:
    # The harness writes between daemons, never while one runs: the marker splits the log by
    # cycle. It starts a line of its own in case a kill cut the daemon's last line short.
    with log.open("a", encoding="utf-8") as sink:
        sink.write("\n" + json.dumps({"cycle": cycle}) + "\n")


def read_log(log: Path, campaign: Campaign) -> None:
    """What the daemon said: every decision logged as allowed (with its seq) and every Paid
    screen, which must follow the allowed payment it belongs to in the same run."""
    cycle = 0
    unpaid: list[int] = []
    for raw in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "Traceback" in raw:
            campaign.violations.append(f"cycle {cycle}: a traceback in the daemon's output")
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if set(entry) == {"cycle"}:
            cycle, unpaid = int(entry["cycle"]), []
            continue
        message = str(entry.get("message", ""))
        words = message.split()
        if len(words) == 3 and words[1] == "allowed" and isinstance(entry.get("seq"), int):
            seq = int(entry["seq"])
            if seq in campaign.shown_allowed:
                # A seq handed out twice: the first decision's commit was not durable.
                earlier = campaign.shown_allowed[seq].cycle
                campaign.violations.append(
                    f"cycle {cycle}: seq {seq} shown allowed again (first in cycle {earlier})"
                )
            amount = entry.get("amount")
            campaign.shown_allowed[seq] = Shown(
                cycle,
                words[0],
                words[2],
                str(entry.get("card", "")),
                int(amount) if isinstance(amount, int) else None,
            )
            if words[0] != "tap":
                unpaid.append(seq)
        elif message.startswith(PAID):
            campaign.paid_shown += 1
            if not unpaid:
                campaign.violations.append(f"cycle {cycle}: Paid shown with no payment logged")
            else:
                unpaid.pop(0)


def run(
    kind: str,
    cycles: int,
    seed_value: int = 1,
    workdir: Path | None = None,
    max_seconds: float | None = None,
) -> Campaign:
    """``max_seconds`` ends the campaign early (the summary says how many cycles ran)."""
    rng = random.Random(seed_value)
    stop_by = None if max_seconds is None else time.monotonic() + max_seconds
    campaign = Campaign(kind, seed=seed_value)
    with tempfile.TemporaryDirectory(prefix="ykt-faults-", dir=workdir) as scratch:
        root = Path(scratch)
        state = root / "state"
        store = Store.open(state / "terminal.db")
        seed(store)
        store.close()
        config = root / f"{kind}.toml"
        config.write_text(config_text(kind, state))
        log = root / "daemon.log"
        with _notify_socket(root / "notify.sock") as notify:
            for cycle in range(1, cycles + 1):
                if stop_by is not None and time.monotonic() > stop_by:
                    break
                _mark(log, cycle)
                process = _start(config, notify.getsockname(), log)
                try:
                    ready = _wait_ready(notify, process)
                    if cycle == 1:
                        campaign.ready_first_s = ready
                    else:
                        campaign.ready_after_kill_s.append(ready)
                    deadline = time.monotonic() + rng.uniform(0.05, 1.2)
                    assert process.stdin is not None
                    while time.monotonic() < deadline:
                        process.stdin.write(_feed(kind, rng).encode())
                        process.stdin.flush()
                        campaign.taps += 1
                        time.sleep(rng.uniform(0.0, 0.06))
                    if process.poll() is not None:
                        campaign.crashes += 1
                        campaign.violations.append(
                            f"cycle {cycle}: the daemon exited {process.returncode} by itself"
                        )
                finally:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=10)
                campaign.cycles += 1
                if campaign.cycles % 100 == 0:
                    print(f"{campaign.cycles} cycles, {campaign.taps} taps", file=sys.stderr)
            # A last, clean start settles what the kills left (unknown passages), then stops.
            _mark(log, campaign.cycles + 1)
            process = _start(config, notify.getsockname(), log)
            try:
                campaign.ready_after_kill_s.append(_wait_ready(notify, process))
            finally:
                process.terminate()
                if process.wait(timeout=30) != 0:
                    campaign.violations.append(f"clean stop exited {process.returncode}")
        read_log(log, campaign)
        check(state / "terminal.db", campaign)
    return campaign


def _read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def check(db: Path, campaign: Campaign) -> None:
    """The journal against what was shown, once no daemon has the file open."""
    with closing(_read_only(db)) as conn:
        broken = journal.verify(conn)
        if broken is not None:
            campaign.violations.append(f"hash chain broken: {broken}")
        _check_rows(conn, campaign)


def _check_rows(conn: sqlite3.Connection, campaign: Campaign) -> None:
    rows = {
        int(seq): (str(tx_id), json.loads(text))
        for seq, tx_id, text in conn.execute("SELECT seq, id, record FROM journal ORDER BY seq")
    }
    if list(rows) != list(range(1, len(rows) + 1)):
        missing = sorted(set(range(1, max(rows, default=0) + 1)) - set(rows))
        campaign.violations.append(f"journal seq has gaps: {missing[:10]}")
    for kind, decision, reason, count in conn.execute(
        "SELECT kind, decision, reason, count(*) FROM journal GROUP BY kind, decision, reason"
    ):
        campaign.journal[f"{kind} {decision} {reason}"] = int(count)
    for seq, shown in sorted(campaign.shown_allowed.items()):
        _, record = rows.get(seq, ("", {}))
        kept = (
            record.get("decision"),
            record.get("reason"),
            mask_card_number(str(record.get("card") or "")),
            record.get("amount") if shown.amount is not None else None,
        )
        if kept != ("allow", shown.reason, shown.card, shown.amount):
            campaign.violations.append(
                f"cycle {shown.cycle}: shown allowed seq {seq} ({shown.reason}, {shown.card}, "
                f"amount {shown.amount}) but journalled {kept}"
            )
    queued = {int(r) for (r,) in conn.execute("SELECT ref FROM outbox WHERE topic = 'tx'")}
    if queued != set(rows):
        campaign.violations.append(
            f"outbox misses {len(set(rows) - queued)} records, holds {len(queued - set(rows))} "
            "unknown"
        )
    events = {int(r) for (r,) in conn.execute("SELECT id FROM events")}
    queued_events = {int(r) for (r,) in conn.execute("SELECT ref FROM outbox WHERE topic='event'")}
    if events != queued_events:
        campaign.violations.append(f"outbox misses {len(events - queued_events)} security events")
    negative = conn.execute(
        "SELECT count(*) FROM purses p WHERE p.balance - (SELECT coalesce(sum(d.amount), 0) "
        "FROM pending_debits d WHERE d.account = p.account AND d.purse = p.purse) < 0"
    ).fetchone()[0]
    if negative:
        campaign.violations.append(f"{negative} purses negative after their pending debits")
    _check_debits(conn, rows, campaign)
    _check_passages(rows, campaign)
    owed = conn.execute("SELECT count(*) FROM awaiting_passage").fetchone()[0]
    if owed:
        campaign.violations.append(f"{owed} openings without a passage record")


def _check_debits(
    conn: sqlite3.Connection, rows: dict[int, tuple[str, dict[str, Any]]], campaign: Campaign
) -> None:
    """Each allowed payment has exactly its own split as pending debits, and nothing else has."""
    debits: dict[str, dict[str, int]] = {}
    seq_of: dict[str, set[int]] = {}
    for tx_id, tx_seq, purse, amount in conn.execute(
        "SELECT tx_id, tx_seq, purse, amount FROM pending_debits"
    ):
        debits.setdefault(str(tx_id), {})[str(purse)] = int(amount)
        seq_of.setdefault(str(tx_id), set()).add(int(tx_seq))
    charged = {
        tx_id: (seq, record)
        for seq, (tx_id, record) in rows.items()
        if record.get("decision") == "allow" and record.get("amount") and record.get("split")
    }
    doubled = sorted(tx for tx in debits if tx not in charged)
    for tx_id, (seq, record) in charged.items():
        split = {str(part["purse"]): int(part["amount"]) for part in record["split"]}
        if debits.get(tx_id) != split or seq_of.get(tx_id) != {seq}:
            campaign.violations.append(
                f"payment seq {seq}: split {split}, pending debits {debits.get(tx_id)}"
            )
    if doubled:
        campaign.violations.append(f"{len(doubled)} pending debits for no allowed payment")


def _check_passages(rows: dict[int, tuple[str, dict[str, Any]]], campaign: Campaign) -> None:
    """An admission that opened the gate has one passage record, never two."""
    refs: dict[str, int] = {}
    for _, record in rows.values():
        if record.get("kind") == "passage" and record.get("ref"):
            refs[str(record["ref"])] = refs.get(str(record["ref"]), 0) + 1
    twice = [ref for ref, count in refs.items() if count > 1]
    if twice:
        campaign.violations.append(f"{len(twice)} admissions with two passage records")
    admitted = {tx for tx, record in rows.values() if _opened(record)}
    unsettled = admitted - set(refs)
    if unsettled:
        campaign.violations.append(f"{len(unsettled)} admissions without a passage record")


def _opened(record: dict[str, Any]) -> bool:
    return bool(record.get("kind") == "door" and record.get("decision") == "allow")


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summary(campaign: Campaign) -> dict[str, Any]:
    allowed = [s for s in campaign.shown_allowed.values() if s.kind != "tap"]
    return {
        "scenario": f"kill9-{campaign.kind}",
        "seed": campaign.seed,
        "cycles": campaign.cycles,
        "taps": campaign.taps,
        "shown_allowed": len(campaign.shown_allowed),
        "payments_shown_paid": campaign.paid_shown,
        "payments_logged_allowed": len(allowed),
        "journal_records": sum(campaign.journal.values()),
        "journal": campaign.journal,
        "crashes": campaign.crashes,
        "violation_count": len(campaign.violations),
        "violations": campaign.violations[:50],
        "ready_first_s": None
        if campaign.ready_first_s is None
        else round(campaign.ready_first_s, 3),
        "ready_after_kill_median_s": round(statistics.median(campaign.ready_after_kill_s), 3)
        if campaign.ready_after_kill_s
        else None,
        "ready_after_kill_p95_s": _quantile(campaign.ready_after_kill_s, 0.95),
    }


# --- a damaged database at start -------------------------------------------------------------

DAMAGE = ("pages", "truncated", "not-sqlite")


def damaged_site(path: Path, records: int) -> None:
    """A seeded terminal database whose journal is several pages deep."""
    store = Store.open(path)
    seed(store)
    for i in range(records):
        draft = TransactionDraft(
            "door", "2026-11-23T09:00:00Z", i, "card", "deny", Reason.CARD_UNKNOWN, 0
        )
        store.commit(draft)
    store.close()


def _journal_root(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        row = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'journal'").fetchone()
        return int(row[0])


def damage(path: Path, how: str) -> None:
    if how == "pages":
        # The journal's interior page: the start cannot find the journal's tip.
        data = bytearray(path.read_bytes())
        offset = (_journal_root(path) - 1) * PAGE + 8
        rng = random.Random(offset)
        data[offset : offset + 192] = bytes(rng.randrange(256) for _ in range(192))
        path.write_bytes(bytes(data))
    elif how == "truncated":
        path.write_bytes(b"")
    elif how == "not-sqlite":
        path.write_text("this is a terminal's notes, not a database\n" * 200)
    elif how != "none":  # "none": the control, which must not be reported as quarantined
        raise ValueError(how)


def readable_records(path: Path) -> int:
    """How many journal records a file still gives up: by SQL if it opens, else carved."""
    try:
        with closing(_read_only(path)) as conn:
            return int(conn.execute("SELECT count(*) FROM journal").fetchone()[0])
    except sqlite3.Error:
        pass
    return len(salvage.recover(path, live_epoch="").records)


def diag_status(config: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "terminal", "diag", "status", "--json", "--config", str(config)],
        # Exits non-zero whenever the level is not ok, which is what is asked here.
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        cwd=config.parent,
    )
    try:
        status = json.loads(result.stdout)
    except ValueError:
        return {"unreadable": result.stdout[-500:] + result.stderr[-500:]}
    return status if isinstance(status, dict) else {"unreadable": result.stdout[-500:]}


def _problems(status: dict[str, Any]) -> str:
    problems = status.get("problems")
    return " | ".join(str(p) for p in problems) if isinstance(problems, list) else ""


def corrupt_db(how: str, records: int = 600, workdir: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ykt-faults-", dir=workdir) as scratch:
        root = Path(scratch)
        state = root / "state"
        db = state / "terminal.db"
        damaged_site(db, records)
        damage(db, how)
        config = root / "door.toml"
        config.write_text(config_text("door", state))
        log = root / "daemon.log"
        violations: list[str] = []
        result: dict[str, Any] = {"scenario": f"corrupt-db {how}", "records_before": records}
        with _notify_socket(root / "notify.sock") as notify:
            process = _start(config, notify.getsockname(), log)
            try:
                result["ready_s"] = round(_wait_ready(notify, process), 3)
                # The daemon reads the quarantined file back in the background: let it finish.
                finish_by = time.monotonic() + 15
                while salvage.pending(db) and time.monotonic() < finish_by:
                    time.sleep(0.1)
                status = diag_status(config)
            finally:
                process.terminate()
                stopped = process.wait(timeout=30)
        if stopped != 0:
            violations.append(f"stop exited {stopped}")
        quarantined = quarantined_files(db)
        if len(quarantined) != 1:
            violations.append(f"quarantined files: {quarantined}")
        said = status.get("database", {}).get("quarantined") or []
        if said != quarantined or "quarantined" not in _problems(status):
            violations.append(f"diag status does not say quarantined: {_problems(status)[:300]}")
        if not (status.get("daemon") or {}).get("running"):
            violations.append("diag status did not find the daemon running")
        readable = sum(readable_records(state / name) for name in quarantined)
        with closing(_read_only(db)) as conn:
            salvaged = int(conn.execute("SELECT count(*) FROM salvaged").fetchone()[0])
            live = int(conn.execute("SELECT count(*) FROM journal").fetchone()[0])
            if journal.verify(conn) is not None:
                violations.append("the new journal does not verify")
        if "Traceback" in log.read_text(encoding="utf-8", errors="replace"):
            violations.append("a traceback in the daemon's output")
        result |= {
            "quarantined": len(quarantined),
            "diag_level": status.get("level"),
            "diag_problems": _problems(status),
            "readable_in_quarantined": readable,
            "salvaged_for_hq": salvaged,
            "lost": records - (max(readable, salvaged) if quarantined else live),
            "new_journal_records": live,
            "violations": violations,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("scenario", choices=["kill9-door", "kill9-pos", "corrupt-db"])
    parser.add_argument("--cycles", type=int, default=100, help="kill -9 cycles")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--records", type=int, default=600, help="corrupt-db: journal size")
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="kill -9: stop early after this long"
    )
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles must be at least 1")
    if args.scenario == "corrupt-db":
        results = [corrupt_db(how, args.records) for how in DAMAGE]
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return 1 if any(r["violations"] for r in results) else 0
    seconds = None if args.max_minutes is None else args.max_minutes * 60
    kind = args.scenario.removeprefix("kill9-")
    result = summary(run(kind, args.cycles, args.seed, max_seconds=seconds))
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if result["violations"] or result["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
