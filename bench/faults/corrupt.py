"""The daemon started on a damaged database: pages overwritten, truncated to nothing, replaced by a
file that is not SQLite. It must reach READY=1, quarantine the file, and `ykt diag status` must
say so. What the quarantined file still holds is counted."""

import random
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from bench.faults.harness import (
    config_text,
    diag_status,
    notify_socket,
    problems,
    read_only,
    start,
    wait_ready,
)
from models.journal import TransactionDraft
from models.reasons import Reason
from terminal.store import Store, journal, salvage
from terminal.store.schema import quarantined_files
from tests.fixtures import seed

PAGE = 4096

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
        with closing(read_only(path)) as conn:
            return int(conn.execute("SELECT count(*) FROM journal").fetchone()[0])
    except sqlite3.Error:
        pass
    return len(salvage.recover(path, live_epoch="").records)


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
        with notify_socket(root / "notify.sock") as notify:
            process = start(config, notify.getsockname(), log)
            try:
                result["ready_s"] = round(wait_ready(notify, process), 3)
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
        if said != quarantined or "quarantined" not in problems(status):
            violations.append(f"diag status does not say quarantined: {problems(status)[:300]}")
        if not (status.get("daemon") or {}).get("running"):
            violations.append("diag status did not find the daemon running")
        readable = sum(readable_records(state / name) for name in quarantined)
        with closing(read_only(db)) as conn:
            salvaged = int(conn.execute("SELECT count(*) FROM salvaged").fetchone()[0])
            live = int(conn.execute("SELECT count(*) FROM journal").fetchone()[0])
            if journal.verify(conn) is not None:
                violations.append("the new journal does not verify")
        if "Traceback" in log.read_text(encoding="utf-8", errors="replace"):
            violations.append("a traceback in the daemon's output")
        result |= {
            "quarantined": len(quarantined),
            "diag_level": status.get("level"),
            "diag_problems": problems(status),
            "readable_in_quarantined": readable,
            "salvaged_for_hq": salvaged,
            "lost": records - (max(readable, salvaged) if quarantined else live),
            "new_journal_records": live,
            "violations": violations,
        }
    return result
