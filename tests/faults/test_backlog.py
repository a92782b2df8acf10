"""The broker outage with a backlog (bench/faults/backlog.py): HQ and the till each killed
mid-drain, then every record at HQ once and the ledger exact; and the check finds a record HQ
lacks, one it holds with other content, and a ledger that does not add up."""

import json
import random
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bench.faults import backlog
from devtools.hq.db import HqDb
from terminal.store import Store
from tests.fixtures import seed

pytestmark = pytest.mark.integration


@pytest.mark.timeout(180)
def test_a_backlog_drains_once_through_hq_and_till_kills(tmp_path: Path) -> None:
    result = backlog.scenario(
        records=1200, live=6, seed=5, resend_seconds=3, tx_batch=100, workdir=tmp_path
    )
    assert result["violations"] == []
    queued = result["queued_when_broker_returned"]
    assert queued == result["journal_records"] >= 1206
    assert 0 < result["hq_held_when_hq_killed"] < result["hq_held_when_terminal_killed"] < queued


def test_the_check_finds_what_hq_lacks_or_holds_altered(tmp_path: Path) -> None:
    db = tmp_path / "terminal.db"
    store = Store.open(db)
    seed(store)
    store.close()
    backlog._offline_day(db, 5, random.Random(3))
    HqDb.create(tmp_path / "hq", backlog.SITE, "ykt/v1", "127.0.0.1:1883").close()
    hq_db = tmp_path / "hq" / "hq.db"
    with closing(sqlite3.connect(db)) as conn, closing(sqlite3.connect(hq_db)) as hq, hq:
        epoch = conn.execute("SELECT value FROM sync_state WHERE key = 'journal_epoch'")
        (current,) = epoch.fetchone()
        for seq, tx_id, text in conn.execute("SELECT seq, id, record FROM journal"):
            record = json.loads(text)
            if seq == 2:
                continue  # never reached HQ
            if seq == 4:
                record["hash"] = "0" * 64  # held with other content
            hq.execute(
                "INSERT INTO tx (tid, epoch, seq, id, record, received_at) VALUES (?, ?, ?, ?, ?, "
                "'2026-12-03T00:00:00Z')",
                (backlog.TID, current, seq, tx_id, json.dumps(record)),
            )
    outcome = backlog.Outcome()
    backlog._check(db, hq_db, outcome)
    found = " | ".join(outcome.violations)
    assert "HQ misses 1 records (first [2])" in found
    assert "1 records differ in id or hash at HQ" in found
    assert "HQ ledger holds 0 debits for 0 fen; the journal 5 for" in found
    assert "5 records still in the outbox" in found
