"""A broker outage with a large backlog, then HQ and the terminal each killed once mid-drain.

A real mosquitto, the reference HQ as its own process (`python -m devtools.hq serve`) and the real
daemon (a shop till with `[sync]` on) as another. The till first learns the site from HQ. Then the
broker stops; the till keeps taking payments (fed on its stdin, as at the counter) and, between
two runs of the daemon, a day of offline payments is written into its journal through the store,
with the same effects a payment has (pending debits), so the backlog reaches the asked size
quickly. The broker comes back, HQ is killed with SIGKILL once some records have arrived and
started again, then the daemon is killed the same way and started again, and the campaign waits
for the outbox to empty. Then, with nothing running:

- HQ holds every journal record exactly once, in the terminal's epoch: the same seqs (1..N, no
  gap), ids and hashes as the terminal's journal;
- HQ's ledger holds each payment's purse parts once (by count and by sum), and every purse at
  HQ is its top-up less what was spent there;
- the terminal's outbox holds no transaction, no pending debit is left once HQ's echo arrived,
  and the terminal's purses equal HQ's;
- HQ raised no alarm about the terminal's records (a seq backwards, a record resent with other
  content, a chain break).
"""

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.faults.harness import ROOT, config_text, notify_socket, read_only, start, wait_ready
from devtools.hq.db import HqDb
from devtools.hq.keyadmin import ROOT_KEY_NAME, config_lines, make_root
from devtools.hq.office import Office
from devtools.mosquitto import Mosquitto, wait_for
from models.journal import TransactionDraft
from models.reasons import Reason
from models.timefmt import rfc3339
from models.wallet import Purse
from sync.envelope import public_key_b64
from sync.keys import write_private_key
from terminal.store import Store
from terminal.store.pos import Charged
from tests.fixtures import card_number

SITE = "demo-centre"
TID = "fault-pos-01"
HOLDERS = 4
TOP_UP = 100_000_000  # fen per holder: no payment of the campaign is ever refused for money
DRAIN_TIMEOUT_S = 600.0


@dataclass
class Outcome:
    records: int = 0  # journal records at the end
    offline_written: int = 0
    live_inputs: int = 0
    queued_at_broker_start: int = 0
    hq_held_when_hq_killed: int = 0
    hq_held_when_terminal_killed: int = 0
    drain_s: float | None = None
    first_record_after_broker_s: float | None = None
    violations: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)


def _holder(n: int) -> dict[str, Any]:
    return {
        "id": f"H{n:03d}",
        "name": f"持卡人{n}",
        "unit": "示范中心",
        "dept": "办公室",
        "class": "red",
        "status": "active",
        "valid_from": "2025-01-01",
        "valid_until": "2030-12-31",
        "groups": [],
        "canteens": [],
        "services": ["shop"],
        "require_face": False,
        "qr_keys": [],
    }


def build_hq(root: Path, port: int, terminal_pub: str, tid: str = TID) -> str:
    """The site at HQ with its root key, the terminal enrolled; returns the [sync] lines that
    make a terminal trust it."""
    HqDb.create(root, SITE, "ykt/v1", f"127.0.0.1:{port}").close()
    db = HqDb(root)
    try:
        make_root(db, root / ROOT_KEY_NAME)
        office = Office(db)
        for n in range(1, HOLDERS + 1):
            office.upsert_holder(_holder(n))
            office.issue_card(f"H{n:03d}", card_number(n))
            office.move_money(f"H{n:03d}", "cash", TOP_UP, "topup")
        office.enroll(tid, terminal_pub)
        return config_lines(db)
    finally:
        db.close()


@dataclass
class Site:
    """A broker (not started), HQ's site directory and one terminal's config, all on disk."""

    broker: Mosquitto
    hq_root: Path
    config: Path
    db: Path

    @property
    def hq_db(self) -> Path:
        return self.hq_root / "hq.db"


def build_site(
    root: Path, *, kind: str = "pos", tid: str = TID, resend: float = 30.0, batch: int = 500
) -> Site:
    """Everything a campaign with a real broker, HQ and terminal needs, under ``root``."""
    (root / "broker").mkdir()
    broker = Mosquitto(root / "broker")
    state = root / "state"
    key = Ed25519PrivateKey.generate()
    write_private_key(state / "sync-ed25519.key", key)
    hq_root = root / "hq"
    trust = build_hq(hq_root, broker.port, public_key_b64(key.public_key()), tid)
    text = config_text(kind, state) + trust.replace(
        "[sync]\n",
        "\n[sync]\nenabled = true\n"
        f'broker_host = "127.0.0.1"\nbroker_port = {broker.port}\nresend_seconds = {resend}\n'
        f"tx_batch = {batch}\n",
    )
    config = root / f"{kind}.toml"
    config.write_text(text, encoding="utf-8")
    return Site(broker, hq_root, config, state / "terminal.db")


def _count(db: Path, sql: str) -> int:
    try:
        with closing(read_only(db)) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return -1  # a writer mid-checkpoint, or the file not there yet: ask again


def _hq_held(hq_db: Path) -> int:
    return _count(hq_db, f"SELECT count(*) FROM tx WHERE tid = '{TID}'")


def _tx_queued(db: Path) -> int:
    return _count(db, "SELECT count(*) FROM outbox WHERE topic = 'tx'")


def _synced(db: Path, hq_db: Path) -> bool:
    head = _count(hq_db, "SELECT coalesce(max(seq), 0) FROM changes")
    mark = _count(db, "SELECT coalesce(max(value), 0) FROM sync_state WHERE key = 'change_seq'")
    return head > 0 and mark == head


def _offline_day(db: Path, count: int, rng: random.Random) -> None:
    """Payments written the way a payment commits (a record plus its pending debit)."""
    store = Store.open(db)
    try:
        for _ in range(count):
            n = rng.randint(1, HOLDERS)
            amount = rng.randint(1, 3000)
            now = datetime.now(UTC)
            at = rfc3339(now, "milliseconds")
            draft = TransactionDraft(
                "shop", at, time.monotonic_ns(), "card", "allow", Reason.ALLOWED,
                store.view_seq, card=card_number(n), holder_id=f"H{n:03d}", amount=amount,
                split=(("cash", amount),),
            )  # fmt: skip
            split = ((Purse.CASH, amount),)
            store.commit(
                draft,
                effects=(Charged(f"H{n:03d}", card_number(n), now, amount, split, False),),
            )
    finally:
        store.close()


class Processes:
    """The daemon and HQ as child processes, each started again after a kill."""

    def __init__(self, root: Path, config: Path, hq_root: Path, port: int) -> None:
        self.root, self.config, self.hq_root, self.port = root, config, hq_root, port
        self.daemon: subprocess.Popen[bytes] | None = None
        self.hq: subprocess.Popen[bytes] | None = None
        self.notify_path = root / "notify.sock"
        self.log = root / "daemon.log"

    def start_hq(self) -> None:
        with (self.root / "hq.log").open("ab") as sink:
            self.hq = subprocess.Popen(
                [sys.executable, "-m", "devtools.hq", "--dir", str(self.hq_root), "serve"],
                stdout=sink,
                stderr=sink,
                cwd=ROOT,
                env=os.environ | {"PYTHONPATH": str(ROOT)},
            )

    def start_daemon(self, notify: Any) -> None:
        self.daemon = start(self.config, self.notify_path, self.log)
        wait_ready(notify, self.daemon)

    def feed(self, text: str) -> None:
        assert self.daemon is not None and self.daemon.stdin is not None
        self.daemon.stdin.write(text.encode())
        self.daemon.stdin.flush()

    @staticmethod
    def kill(process: subprocess.Popen[bytes] | None) -> None:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)

    def stop_daemon(self) -> int | None:
        if self.daemon is None:
            return None
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(30)
            except subprocess.TimeoutExpired:
                self.kill(self.daemon)
        code = self.daemon.returncode
        self.daemon = None
        return code

    def close(self) -> None:
        self.kill(self.daemon)
        if self.hq is not None and self.hq.poll() is None:
            self.hq.terminate()
            try:
                self.hq.wait(10)
            except subprocess.TimeoutExpired:
                self.kill(self.hq)


def _live_payments(procs: Processes, db: Path, count: int, rng: random.Random) -> int:
    """Amount + tap at the till, while the broker is away; waits until each is decided."""
    before = _count(db, "SELECT count(*) FROM journal")
    for _ in range(count):
        card = card_number(rng.randint(1, HOLDERS))
        procs.feed(f"amount {rng.randint(1, 3000)}\ntap {card} seq=1\nwait 0.05\n")
    if not wait_for(lambda: _count(db, "SELECT count(*) FROM journal") >= before + count, 120):
        raise RuntimeError("the till did not decide every live payment within 2 minutes")
    return count


def scenario(
    records: int = 5000,
    live: int = 100,
    seed: int = 1,
    resend_seconds: float = 30.0,
    tx_batch: int = 500,
    workdir: Path | None = None,
) -> dict[str, Any]:
    rng = random.Random(seed)
    outcome = Outcome()
    started = time.monotonic()

    def note(what: str) -> None:
        outcome.timeline.append(f"{time.monotonic() - started:7.1f} s  {what}")

    with tempfile.TemporaryDirectory(prefix="ykt-backlog-", dir=workdir) as scratch:
        root = Path(scratch)
        site = build_site(root, resend=resend_seconds, batch=tx_batch)
        broker, db, hq_db = site.broker, site.db, site.hq_db
        procs = Processes(root, site.config, site.hq_root, broker.port)
        broker.start()
        try:
            with notify_socket(procs.notify_path) as notify:
                _run(procs, broker, notify, db, hq_db, outcome, rng, records, live, note)
        finally:
            procs.close()
            broker.stop()
        outcome.records = _count(db, "SELECT count(*) FROM journal")
        _check(db, hq_db, outcome)
    return _summary(outcome, records, live, seed)


def _run(
    procs: Processes,
    broker: Mosquitto,
    notify: Any,
    db: Path,
    hq_db: Path,
    outcome: Outcome,
    rng: random.Random,
    records: int,
    live: int,
    note: Callable[[str], None],
) -> None:
    procs.start_hq()
    procs.start_daemon(notify)
    if not wait_for(lambda: _synced(db, hq_db), 60):
        raise RuntimeError("the till did not learn the site from HQ within a minute")
    note("till synced with HQ; broker stopped")
    broker.stop()
    outcome.live_inputs += _live_payments(procs, db, live // 2, rng)
    code = procs.stop_daemon()
    if code != 0:
        outcome.violations.append(f"SIGTERM while offline: exit {code}")
    _offline_day(db, records, rng)
    outcome.offline_written = records
    procs.start_daemon(notify)
    outcome.live_inputs += _live_payments(procs, db, live - live // 2, rng)
    outcome.queued_at_broker_start = _tx_queued(db)
    note(f"{outcome.queued_at_broker_start} records queued; broker started")
    # Where in the drain each kill lands: HQ in the first third, the terminal in the second.
    total = outcome.queued_at_broker_start
    kill_hq_at = rng.randint(1, total // 3)
    kill_terminal_at = rng.randint(total // 3 + 1, 2 * total // 3)
    broker_back = time.monotonic()
    broker.start()
    if not wait_for(lambda: _hq_held(hq_db) > 0, 120, interval=0.002):
        raise RuntimeError("no record reached HQ within 2 minutes of the broker's return")
    outcome.first_record_after_broker_s = round(time.monotonic() - broker_back, 2)
    if not wait_for(lambda: _hq_held(hq_db) >= kill_hq_at, 120, interval=0.002):
        raise RuntimeError(f"HQ never reached {kill_hq_at} records")
    procs.kill(procs.hq)
    outcome.hq_held_when_hq_killed = _hq_held(hq_db)
    note(f"HQ killed holding {outcome.hq_held_when_hq_killed}")
    procs.start_hq()
    if not wait_for(lambda: _hq_held(hq_db) >= kill_terminal_at, 120, interval=0.002):
        raise RuntimeError(f"the drain did not reach {kill_terminal_at} after HQ's restart")
    procs.kill(procs.daemon)
    procs.daemon = None
    outcome.hq_held_when_terminal_killed = _hq_held(hq_db)
    note(f"terminal killed, HQ holding {outcome.hq_held_when_terminal_killed}")
    procs.start_daemon(notify)
    drained = wait_for(lambda: _tx_queued(db) == 0, DRAIN_TIMEOUT_S, interval=0.05)
    outcome.drain_s = round(time.monotonic() - broker_back, 2)
    note(f"outbox {'empty' if drained else 'NOT empty'}")
    if not drained:
        outcome.violations.append(f"outbox not empty after {DRAIN_TIMEOUT_S:.0f} s")
    # HQ echoes the debits back as ledger changes; only then are the till's purses final.
    if not wait_for(
        lambda: _synced(db, hq_db) and _count(db, "SELECT count(*) FROM pending_debits") == 0,
        120,
    ):
        outcome.violations.append("the till did not take in HQ's echo of its debits")
    if not 0 < outcome.hq_held_when_hq_killed < total:
        outcome.violations.append("HQ was not killed mid-drain: the campaign proved nothing")
    if not outcome.hq_held_when_hq_killed < outcome.hq_held_when_terminal_killed < total:
        outcome.violations.append("the terminal was not killed mid-drain")
    code = procs.stop_daemon()
    if code != 0:
        outcome.violations.append(f"the final SIGTERM: exit {code}")


def _check(db: Path, hq_db: Path, outcome: Outcome) -> None:
    with closing(read_only(db)) as conn, closing(sqlite3.connect(hq_db)) as hq:
        epoch = conn.execute("SELECT value FROM sync_state WHERE key = 'journal_epoch'").fetchone()
        ours = {
            int(seq): (str(tx_id), str(digest), json.loads(text))
            for seq, tx_id, digest, text in conn.execute(
                "SELECT seq, id, hash, record FROM journal ORDER BY seq"
            )
        }
        theirs: dict[int, tuple[str, str]] = {}
        for seq, tx_id, text in hq.execute(
            "SELECT seq, id, record FROM tx WHERE tid = ? AND epoch = ?", (TID, epoch[0])
        ):
            theirs[int(seq)] = (str(tx_id), str(json.loads(text).get("hash")))
        others = hq.execute("SELECT count(*) FROM tx WHERE tid = ? AND epoch != ?", (TID, epoch[0]))
        if others.fetchone()[0]:
            outcome.violations.append("HQ holds records of this terminal under another epoch")
        if list(ours) != list(range(1, len(ours) + 1)):
            outcome.violations.append("the terminal's journal seq has gaps")
        missing = sorted(set(ours) - set(theirs))
        if missing:
            outcome.violations.append(f"HQ misses {len(missing)} records (first {missing[:5]})")
        unknown = sorted(set(theirs) - set(ours))
        if unknown:
            outcome.violations.append(f"HQ holds {len(unknown)} seqs the journal has not")
        differ = [s for s in set(ours) & set(theirs) if theirs[s] != ours[s][:2]]
        if differ:
            outcome.violations.append(f"{len(differ)} records differ in id or hash at HQ")
        spent: dict[str, int] = {}
        parts = 0
        for _, _, record in ours.values():
            if record.get("decision") == "allow" and record.get("split"):
                for part in record["split"]:
                    parts += 1
                    spent[str(record["holder_id"])] = spent.get(str(record["holder_id"]), 0) + int(
                        part["amount"]
                    )
        posted = hq.execute(
            "SELECT count(*), coalesce(-sum(delta), 0) FROM ledger WHERE origin_tid = ?", (TID,)
        ).fetchone()
        if tuple(posted) != (parts, sum(spent.values())):
            outcome.violations.append(
                f"HQ ledger holds {posted[0]} debits for {posted[1]} fen; the journal "
                f"{parts} for {sum(spent.values())}"
            )
        for n in range(1, HOLDERS + 1):
            account = f"H{n:03d}"
            row = hq.execute(
                "SELECT balance FROM purses WHERE account = ? AND purse = 'cash'", (account,)
            ).fetchone()
            expected = TOP_UP - spent.get(account, 0)
            local = conn.execute(
                "SELECT balance FROM purses WHERE account = ? AND purse = 'cash'", (account,)
            ).fetchone()
            if row is None or int(row[0]) != expected:
                outcome.violations.append(f"{account} at HQ: {row}, expected {expected}")
            if local is None or int(local[0]) != expected:
                outcome.violations.append(f"{account} at the till: {local}, expected {expected}")
        kinds = [str(k) for (k,) in hq.execute("SELECT kind FROM alarms WHERE tid = ?", (TID,))]
        if kinds:
            outcome.violations.append(f"HQ raised alarms: {sorted(set(kinds))}")
        left = conn.execute("SELECT count(*) FROM outbox WHERE topic = 'tx'").fetchone()[0]
        if left:
            outcome.violations.append(f"{left} records still in the outbox")


def _summary(outcome: Outcome, records: int, live: int, seed: int) -> dict[str, Any]:
    return {
        "scenario": "broker-backlog",
        "seed": seed,
        "offline_written": records,
        "live_payments_fed": outcome.live_inputs,
        "journal_records": outcome.records,
        "queued_when_broker_returned": outcome.queued_at_broker_start,
        "hq_held_when_hq_killed": outcome.hq_held_when_hq_killed,
        "hq_held_when_terminal_killed": outcome.hq_held_when_terminal_killed,
        "first_record_after_broker_s": outcome.first_record_after_broker_s,
        "drained_after_broker_s": outcome.drain_s,
        "timeline": outcome.timeline,
        "violations": outcome.violations,
    }


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults broker-backlog", description=__doc__
    )
    parser.add_argument("--records", type=int, default=5000, help="offline payments written")
    parser.add_argument("--live", type=int, default=100, help="payments fed at the till offline")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--resend-seconds", type=float, default=30.0, help="the till's [sync] resend_seconds"
    )
    parser.add_argument("--tx-batch", type=int, default=500, help="the till's [sync] tx_batch")
    args = parser.parse_args(argv)
    if args.records < 300 or args.live < 2:
        parser.error("--records must be at least 300 and --live at least 2 (to kill mid-drain)")
    result = scenario(args.records, args.live, args.seed, args.resend_seconds, args.tx_batch)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
