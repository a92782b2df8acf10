"""HQ credits a terminal's correction only against a payment it holds of that terminal.

A signed record proves which terminal sent it, not that its money is owed: a door terminal's
correction of a transaction that never existed once added 50,000 yuan to an account.
"""

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from devtools.hq.db import HqDb
from devtools.hq.intake import ingest_tx
from devtools.hq.office import Office
from models.canonical import ZERO_HASH
from models.journal import TransactionDraft, seal
from models.reasons import Reason
from sync.envelope import public_key_b64
from tests.sync.messages import SITE, TID, card_number

POS2 = "canteen-02"
DOOR = "gate-07"


class Journal:
    """One terminal's journal: records sealed and chained as the terminal does."""

    def __init__(self, tid: str) -> None:
        self.tid, self.seq, self.prev = tid, 0, ZERO_HASH

    def record(self, kind: str, holder_id: str, split: dict[str, int], **extra: object) -> dict:
        self.seq += 1
        draft = TransactionDraft(
            kind, "2026-11-23T12:00:00+08:00", self.seq, "card", "allow", Reason.ALLOWED, 1,
            card=card_number(1), holder_id=holder_id, amount=sum(split.values()),
            split=tuple(split.items()), **extra,  # type: ignore[arg-type]
        )  # fmt: skip
        record = seal(draft, seq=self.seq, tx_id=f"{self.tid}-tx-{self.seq}", prev_hash=self.prev)
        self.prev = record["hash"]
        return record

    def pay(self, holder_id: str, **split: int) -> dict:
        return self.record("meal", holder_id, split)

    def correct(self, original_id: str, holder_id: str, **split: int) -> dict:
        return self.record("correction", holder_id, split, corrects=original_id)


@pytest.fixture
def office(tmp_path: Path) -> Office:
    HqDb.create(tmp_path / "hq", SITE, "ykt/v1", "127.0.0.1:1883").close()
    office = Office(HqDb(tmp_path / "hq"))
    for tid in (TID, POS2, DOOR):
        office.enroll(tid, public_key_b64(Ed25519PrivateKey.generate().public_key()))
    for account in ("H1", "H2"):
        office.move_money(account, "cash", 10_000, "topup")
        office.move_money(account, "meal_subsidy", 1_000, "subsidy_grant")
    return office


def balance(office: Office, account: str, purse: str = "cash") -> int:
    row = office.db.conn.execute(
        "SELECT balance FROM purses WHERE account = ? AND purse = ?", (account, purse)
    ).fetchone()
    return int(row[0])


def refusals(office: Office) -> list[dict]:
    rows = office.db.conn.execute("SELECT kind, detail FROM alarms ORDER BY id").fetchall()
    assert {kind for kind, _ in rows} <= {"posting_refused"}
    return [json.loads(detail) for _, detail in rows]


def corrections(office: Office) -> int:
    row = office.db.conn.execute("SELECT count(*) FROM ledger WHERE reason = 'correction'")
    return int(row.fetchone()[0])


def test_a_correction_within_its_payment_is_credited_and_names_its_record(office: Office) -> None:
    pos = Journal(TID)
    paid = pos.pay("H1", meal_subsidy=500, cash=200)
    first = pos.correct(paid["id"], "H1", cash=200, meal_subsidy=100)
    second = pos.correct(paid["id"], "H1", meal_subsidy=400)  # exactly what is left
    assert ingest_tx(office.db, TID, [paid, first, second]) == (3, 3, "")
    assert balance(office, "H1") == 10_000
    assert balance(office, "H1", "meal_subsidy") == 1_000
    assert refusals(office) == []
    origins = office.db.conn.execute(
        "SELECT origin_tid, origin_tx_id, purse, delta FROM ledger WHERE reason = 'correction' "
        "ORDER BY seq"
    ).fetchall()
    assert sorted(origins) == [
        (TID, first["id"], "cash", 200),
        (TID, first["id"], "meal_subsidy", 100),
        (TID, second["id"], "meal_subsidy", 400),
    ]


def test_a_work_meal_comes_back_once(office: Office) -> None:
    office.move_money("H1", "work_meals", 2, "subsidy_grant")
    pos = Journal(TID)
    paid = pos.pay("H1", work_meals=1)
    back = pos.correct(paid["id"], "H1", work_meals=1)
    again = pos.correct(paid["id"], "H1", work_meals=1)
    assert ingest_tx(office.db, TID, [paid, back, again]) == (3, 3, "")
    assert balance(office, "H1", "work_meals") == 2
    assert [r["seq"] for r in refusals(office)] == [3]


def _refused(office: Office, tid: str, records: list[dict], why: str) -> None:
    before = {a: (balance(office, a), balance(office, a, "meal_subsidy")) for a in ("H1", "H2")}
    credited = corrections(office)
    new, through, _ = ingest_tx(office.db, tid, records)
    # Kept and acknowledged: the terminal's signed account of what happened is evidence, and a
    # refused record must not make it send the batch for ever.
    assert (new, through) == (len(records), records[-1]["seq"])
    after = {a: (balance(office, a), balance(office, a, "meal_subsidy")) for a in ("H1", "H2")}
    assert after == before and corrections(office) == credited
    [refusal] = refusals(office)
    assert refusal["seq"] == records[-1]["seq"]
    assert "correction refused" in refusal["error"] and why in refusal["error"]


def test_a_correction_of_a_payment_that_does_not_exist_moves_no_money(office: Office) -> None:
    pos = Journal(TID)
    _refused(office, TID, [pos.correct("no-such-tx", "H1", cash=5_000_000)], "no payment")


def test_a_door_terminal_cannot_credit_anyone(office: Office) -> None:
    door = Journal(DOOR)
    _refused(office, DOOR, [door.correct("no-such-tx", "H1", cash=5_000_000)], "no payment")


def test_a_correction_of_another_terminals_payment_moves_no_money(office: Office) -> None:
    pos = Journal(TID)
    paid = pos.pay("H1", cash=700)
    ingest_tx(office.db, TID, [paid])
    other = Journal(POS2)
    _refused(office, POS2, [other.correct(paid["id"], "H1", cash=700)], "no payment")


def test_a_correction_for_another_account_moves_no_money(office: Office) -> None:
    pos = Journal(TID)
    paid = pos.pay("H1", cash=700)
    ingest_tx(office.db, TID, [paid])
    _refused(office, TID, [pos.correct(paid["id"], "H2", cash=700)], "account")


def test_a_correction_above_its_payment_moves_no_money(office: Office) -> None:
    pos = Journal(TID)
    paid = pos.pay("H1", cash=700)
    ingest_tx(office.db, TID, [paid])
    _refused(office, TID, [pos.correct(paid["id"], "H1", cash=701)], "left")


def test_a_correction_to_a_purse_the_payment_did_not_use_moves_no_money(office: Office) -> None:
    pos = Journal(TID)
    paid = pos.pay("H1", meal_subsidy=500, cash=200)
    ingest_tx(office.db, TID, [paid])
    # Right in total, but partly to cash the holder never paid: nothing of it is credited.
    _refused(office, TID, [pos.correct(paid["id"], "H1", cash=300, meal_subsidy=200)], "left")


def test_the_same_correction_twice_is_credited_once(office: Office) -> None:
    pos = Journal(TID)
    paid = pos.pay("H1", cash=700)
    first = pos.correct(paid["id"], "H1", cash=700)
    ingest_tx(office.db, TID, [paid, first])
    assert ingest_tx(office.db, TID, [paid, first]) == (0, 2, "")  # resent: already held
    assert balance(office, "H1") == 10_000
    _refused(office, TID, [pos.correct(paid["id"], "H1", cash=700)], "left")


def test_a_correction_of_a_correction_moves_no_money(office: Office) -> None:
    pos = Journal(TID)
    paid = pos.pay("H1", cash=700)
    back = pos.correct(paid["id"], "H1", cash=700)
    ingest_tx(office.db, TID, [paid, back])
    _refused(office, TID, [pos.correct(back["id"], "H1", cash=700)], "no payment")


def test_a_refused_correction_does_not_hold_up_the_rest_of_the_upload(office: Office) -> None:
    pos = Journal(TID)
    forged = pos.correct("no-such-tx", "H1", cash=5_000_000)
    later = pos.pay("H1", cash=300)
    assert ingest_tx(office.db, TID, [forged, later]) == (2, 2, "")
    assert balance(office, "H1") == 9_700
    assert [r["seq"] for r in refusals(office)] == [1]


def test_a_record_reusing_a_posted_records_id_is_refused_not_a_crash(office: Office) -> None:
    # The same id at another seq: posting it would break the ledger's uniqueness and fail the
    # whole upload, for ever, at every resend.
    pos = Journal(TID)
    paid = pos.pay("H1", cash=700)
    back = pos.correct(paid["id"], "H1", cash=300)
    ingest_tx(office.db, TID, [paid, back])
    draft = TransactionDraft(
        "correction", "2026-11-23T12:00:00+08:00", 3, "card", "allow", Reason.ALLOWED, 1,
        card=card_number(1), holder_id="H1", amount=300, split=(("cash", 300),),
        corrects=paid["id"],
    )  # fmt: skip
    replay = seal(draft, seq=3, tx_id=back["id"], prev_hash=back["hash"])
    _refused(office, TID, [replay], "already posted")
