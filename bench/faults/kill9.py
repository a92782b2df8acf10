"""kill -9 of the real daemon at random points under door taps or shop payments.

Each cycle starts `ykt run` on simulated devices (the reader fed from stdin), waits for READY=1,
feeds taps (door) or amount + tap pairs (shop till), and sends SIGKILL after a random delay. A
last, clean start settles what the kills left. Then the journal, read through a read-only
connection, is checked against everything the daemon said it did (its JSON log).
"""

import json
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.faults.harness import (
    demo_terminal,
    notify_socket,
    quantile,
    read_only,
    start,
    wait_ready,
)
from models.cards import mask_card_number
from terminal.store import journal
from tests.fixtures import card_number

PAID = "display: 支付成功 Paid"


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
        state, config = demo_terminal(root, kind)
        log = root / "daemon.log"
        with notify_socket(root / "notify.sock") as notify:
            for cycle in range(1, cycles + 1):
                if stop_by is not None and time.monotonic() > stop_by:
                    break
                _mark(log, cycle)
                process = start(config, notify.getsockname(), log)
                try:
                    ready = wait_ready(notify, process)
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
            process = start(config, notify.getsockname(), log)
            try:
                campaign.ready_after_kill_s.append(wait_ready(notify, process))
            finally:
                process.terminate()
                if process.wait(timeout=30) != 0:
                    campaign.violations.append(f"clean stop exited {process.returncode}")
        read_log(log, campaign)
        check(state / "terminal.db", campaign)
    return campaign


def check(db: Path, campaign: Campaign) -> None:
    """The journal against what was shown, once no daemon has the file open."""
    with closing(read_only(db)) as conn:
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
        "ready_after_kill_p95_s": quantile(campaign.ready_after_kill_s, 0.95),
    }
