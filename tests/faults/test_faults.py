"""The short form of the fault campaign (bench/faults/, figures in docs/reliability.md): the
daemon killed at random points loses nothing it showed, it starts on a damaged database, and the
checks themselves find what they look for."""

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.faults import corrupt, kill9
from models.journal import TransactionDraft
from models.reasons import Reason
from models.wallet import Purse
from terminal.store import Charged, Store
from tests.fixtures import card_number, seed

pytestmark = pytest.mark.integration

CYCLES = 12  # the long form runs hundreds (docs/reliability.md); each test stays well under 60 s


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["door", "pos"])
def test_kill9_under_load_loses_nothing(kind: str, tmp_path: Path) -> None:
    campaign = kill9.run(kind, CYCLES, seed_value=7, workdir=tmp_path)
    assert campaign.cycles == CYCLES and campaign.crashes == 0
    assert campaign.violations == []
    assert campaign.shown_allowed, "the stream admitted nobody: the campaign proved nothing"
    assert len(campaign.ready_after_kill_s) == CYCLES  # every restart, the clean one included
    if kind == "pos":
        logged = [s for s in campaign.shown_allowed.values() if s.kind == "shop"]
        assert campaign.paid_shown == len(logged) > 0
        assert all(s.amount is not None for s in logged)


def _pay(store: Store, amount: int) -> str:
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    split = ((Purse.CASH, amount),)
    draft = TransactionDraft(
        "shop",
        "2026-11-23T09:00:00Z",
        0,
        "card",
        "allow",
        Reason.ALLOWED,
        0,
        card=card_number(1),
        holder_id="H001",
        amount=amount,
        split=(("cash", amount),),
    )
    committed = store.commit(
        draft, effects=(Charged("H001", card_number(1), at, amount, split, subsidised=False),)
    )
    return committed.id


def test_the_checks_find_what_is_wrong(tmp_path: Path) -> None:
    db = tmp_path / "terminal.db"
    store = Store.open(db)
    seed(store)
    first = _pay(store, 500)
    _pay(store, 700)
    _pay(store, 300)
    store.close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM outbox WHERE topic = 'tx' AND ref = 2")
        conn.execute(
            "INSERT INTO pending_debits (tx_id, tx_seq, account, purse, amount, at) "
            "VALUES (?, 1, 'H001', 'meal_subsidy', 500, '2026-11-23T09:00:00Z')",
            (first,),
        )
        conn.execute("UPDATE purses SET balance = 100 WHERE account = 'H001' AND purse = 'cash'")
    conn.close()
    masked = "3601************0001"
    campaign = kill9.Campaign(
        "pos",
        shown_allowed={
            3: kill9.Shown(4, "shop", "allowed", masked, 300),
            2: kill9.Shown(4, "shop", "allowed", masked, 900),
            9: kill9.Shown(5, "shop", "allowed", masked, 100),
        },
    )
    kill9.check(db, campaign)
    assert campaign.violations == [
        f"cycle 4: shown allowed seq 2 (allowed, {masked}, amount 900) but journalled "
        f"('allow', 'allowed', '{masked}', 700)",
        f"cycle 5: shown allowed seq 9 (allowed, {masked}, amount 100) but journalled "
        "(None, None, '', None)",
        "outbox misses 1 records, holds 0 unknown",
        "1 purses negative after their pending debits",
        "payment seq 1: split {'cash': 500}, pending debits {'cash': 500, 'meal_subsidy': 500}",
    ]


def test_a_broken_chain_and_a_gap_are_found(tmp_path: Path) -> None:
    db = tmp_path / "terminal.db"
    store = Store.open(db)
    seed(store)
    for _ in range(3):
        draft = TransactionDraft(
            "door", "2026-11-23T09:00:00Z", 0, "card", "deny", Reason.CARD_UNKNOWN, 0
        )
        store.commit(draft)
    store.close()
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("DELETE FROM journal WHERE seq = 2")
        conn.execute("DELETE FROM outbox WHERE ref = 2")
    conn.close()
    campaign = kill9.Campaign("door")
    kill9.check(db, campaign)
    assert campaign.violations[0].startswith("hash chain broken")
    assert campaign.violations[1:] == ["journal seq has gaps: [2]"]


def test_what_the_daemon_showed_is_read_from_its_log(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    lines = [
        {"cycle": 1},
        {"message": "shop allowed allowed", "seq": 4, "card": "3601****0001", "amount": 12},
        {"message": "display: 支付成功 Paid | 张* | 金额 0.12 元"},
        {"cycle": 2},
        {"message": "display: 支付成功 Paid | 张* | 金额 0.12 元"},
        {"message": "tap allowed allowed", "seq": 5, "card": "3601****0001"},
        {"cycle": 3},
        {"message": "tap allowed allowed", "seq": 5, "card": "3601****0002"},
    ]
    log.write_text(
        "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
        + "\nTraceback (most recent call last):\n"
    )
    campaign = kill9.Campaign("pos")
    kill9.read_log(log, campaign)
    assert campaign.shown_allowed == {
        4: kill9.Shown(1, "shop", "allowed", "3601****0001", 12),
        5: kill9.Shown(3, "tap", "allowed", "3601****0002", None),
    }
    assert campaign.paid_shown == 2
    assert campaign.violations == [
        "cycle 2: Paid shown with no payment logged",
        "cycle 3: seq 5 shown allowed again (first in cycle 2)",
        "cycle 3: a traceback in the daemon's output",
    ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", corrupt.DAMAGE)
def test_a_damaged_database_is_quarantined_and_said(how: str, tmp_path: Path) -> None:
    result = corrupt.corrupt_db(how, records=600, workdir=tmp_path)
    assert result["violations"] == []
    assert result["quarantined"] == 1 and result["ready_s"] > 0
    assert result["diag_level"] != "ok"
    assert result["new_journal_records"] == 0
    if how == "pages":
        # One page of the journal's b-tree is gone, not the records under it.
        assert 0 < result["readable_in_quarantined"] <= 600
        assert result["lost"] < 600
    else:
        assert result["readable_in_quarantined"] == 0 and result["lost"] == 600


@pytest.mark.timeout(60)
def test_an_intact_database_is_not_reported_as_quarantined(tmp_path: Path) -> None:
    result = corrupt.corrupt_db("none", records=50, workdir=tmp_path)
    assert result["quarantined"] == 0
    assert "quarantined files: []" in result["violations"]
    assert result["lost"] == 0
