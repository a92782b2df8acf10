"""The short form of the kill -9 campaign (bench/faults.py): the daemon killed at random points
under taps and payments loses nothing it said it did, and the checks themselves can fail."""

import sqlite3
from pathlib import Path

import pytest

from bench import faults
from models.journal import TransactionDraft
from models.reasons import Reason
from terminal.demo_site import seed
from terminal.store import Store

pytestmark = pytest.mark.integration

CYCLES = 8  # the documented long form runs 1,000 (docs/reliability.md)


@pytest.mark.parametrize("kind", ["door", "pos"])
def test_kill9_under_load_loses_nothing(kind: str, tmp_path: Path) -> None:
    campaign = faults.run(kind, CYCLES, seed_value=7, workdir=tmp_path)
    assert campaign.cycles == CYCLES and campaign.crashes == 0
    assert campaign.violations == []
    assert campaign.shown_allowed, "the stream admitted nobody: the campaign proved nothing"
    assert sum(campaign.journal.values()) >= len(campaign.shown_allowed)


def test_the_checks_find_what_is_missing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "terminal.db")
    seed(store)
    for _ in range(3):
        store.commit(
            TransactionDraft("door", "2026-11-23T09:00:00Z", 0, "card", "allow", Reason.ALLOWED, 0)
        )
    store.close()
    conn = sqlite3.connect(tmp_path / "terminal.db")
    conn.execute("DELETE FROM outbox WHERE ref = 2")
    conn.execute("INSERT INTO awaiting_passage (tx_id, seq) VALUES ('x', 3)")
    conn.commit()
    conn.close()
    campaign = faults.Campaign("door", shown_allowed={3: "allowed", 9: "allowed"})
    faults._check(tmp_path / "terminal.db", campaign)
    assert campaign.violations == [
        "shown allowed (allowed) but not journalled: seq 9",
        "outbox misses 1 records",
        "1 openings without a passage record",
    ]
