"""The reference HQ's card office, ledger and intake, without a broker."""

import csv
import json
from pathlib import Path

import pytest

from devtools.hq.cli import main
from devtools.hq.db import HqDb
from devtools.hq.importer import import_sheet
from devtools.hq.intake import ingest_salvaged, ingest_tx, store_status
from devtools.hq.office import Office, OfficeError, denies_in
from models.canonical import ZERO_HASH, record_hash
from models.journal import TransactionDraft, seal
from models.reasons import Reason
from sync.changes import parse_change
from tests.sync.messages import SITE, TID, card_number, holder

PUB = "h6YLfjw80HyEmq0eRnix/qEbG753buVo8XZp0fvGxZc="


@pytest.fixture
def office(tmp_path: Path) -> Office:
    HqDb.create(tmp_path / "hq", SITE, "ykt/v1", "127.0.0.1:1883").close()
    return Office(HqDb(tmp_path / "hq"))


def entries(office: Office) -> list[dict]:
    return office.db.changes_after(0, 1000)


def test_every_change_the_office_writes_parses_at_the_terminal(office: Office) -> None:
    office.upsert_holder(holder("H1"))
    office.issue_card("H1", card_number(1))
    office.move_money("H1", "cash", 5000, "topup")
    office.move_money("H1", "meal_subsidy", 3000, "subsidy_grant")
    office.expire_subsidy("H1", "meal_subsidy")
    office.set_holidays("cn", ["2027-01-01"], ["2027-02-07"])
    office.upsert_rule({"id": "r1", "type": "limit", "class": "red", "per_day": 10000})
    seqs = [e["seq"] for e in entries(office)]
    assert seqs == list(range(1, 8))
    for entry in entries(office):
        parse_change(entry)


def test_card_lifecycle_follows_the_card_office_rules(office: Office) -> None:
    office.upsert_holder(holder("H1"))
    office.issue_card("H1", card_number(1))
    with pytest.raises(OfficeError, match="already has a valid card"):
        office.issue_card("H1", card_number(2))
    office.set_status(card_number(1), "lost")
    office.set_status(card_number(1), "active")  # 解挂: found again
    office.set_status(card_number(1), "lost")
    office.replace_card(card_number(1), card_number(2))  # 补卡
    with pytest.raises(OfficeError, match="void forever"):
        office.set_status(card_number(1), "active")
    cards = [e["card"] for e in entries(office) if e["kind"] == "card.upsert"]
    assert cards[-1]["issue_seq"] == 2 and cards[-1]["status"] == "active"
    assert cards[-2]["status"] == "replaced"
    denies = [denies_in(e) for e in entries(office)]
    assert [d["cards"][0]["status"] for d in denies if d] == ["lost", "lost", "replaced"]


def test_unlost_refused_once_a_replacement_exists(office: Office) -> None:
    office.upsert_holder(holder("H1"))
    office.issue_card("H1", card_number(1))
    office.set_status(card_number(1), "frozen")
    office.replace_card(card_number(1), card_number(2))
    with pytest.raises(OfficeError):
        office.set_status(card_number(1), "active")


def test_bad_holder_is_refused_before_it_is_published(office: Office) -> None:
    with pytest.raises(OfficeError, match="status"):
        office.upsert_holder(holder("H1", status="retired"))
    assert entries(office) == []


def _records(count: int, epoch: str = "", amount: int = 700) -> list[dict]:
    records, prev = [], ZERO_HASH
    for seq in range(1, count + 1):
        draft = TransactionDraft(
            "meal",
            "2026-11-23T12:00:00+08:00",
            seq,
            "card",
            "allow",
            Reason.ALLOWED,
            1,
            card=card_number(1),
            holder_id="H1",
            amount=amount,
            split=(("cash", amount),),
        )
        record = seal(draft, seq=seq, tx_id=f"tx-{epoch}-{seq}", prev_hash=prev, epoch=epoch)
        records.append(record)
        prev = record["hash"]
    return records


def test_tx_is_stored_and_posted_once_whatever_arrives_twice(office: Office) -> None:
    office.enroll(TID, PUB)
    office.move_money("H1", "cash", 10_000, "topup")
    records = _records(5)
    assert ingest_tx(office.db, TID, records[2:4]) == (2, 0, "")  # out of order: no ack yet
    assert ingest_tx(office.db, TID, records[:3]) == (2, 4, "")
    assert ingest_tx(office.db, TID, records) == (1, 5, "")
    assert ingest_tx(office.db, TID, records) == (0, 5, "")
    conn = office.db.conn
    assert conn.execute("SELECT balance FROM purses WHERE account = 'H1'").fetchone() == (6500,)
    debits = conn.execute("SELECT count(*) FROM ledger WHERE reason = 'debit'").fetchone()
    assert debits == (5,)
    echoed = [e for e in entries(office) if e["kind"] == "ledger" and "origin" in e["entry"]]
    assert [e["entry"]["origin"]["tx_seq"] for e in echoed] == [3, 4, 1, 2, 5]


def alarms(office: Office) -> list[tuple[str, dict]]:
    rows = office.db.conn.execute("SELECT kind, detail FROM alarms ORDER BY id")
    return [(kind, json.loads(detail)) for kind, detail in rows]


def test_a_journal_that_started_again_is_a_new_epoch_not_records_hq_has(office: Office) -> None:
    # A terminal's database was quarantined: its new journal starts at seq 1 again. Before
    # epochs HQ took those for records it had and posted none of their money.
    office.enroll(TID, PUB)
    office.move_money("H1", "cash", 10_000, "topup")
    first = _records(5, epoch="aa" * 16)
    assert ingest_tx(office.db, TID, first) == (5, 5, "aa" * 16)
    assert alarms(office) == []  # a terminal's first journal is no alarm
    again = _records(3, epoch="bb" * 16, amount=200)
    assert ingest_tx(office.db, TID, again) == (3, 3, "bb" * 16)
    conn = office.db.conn
    assert conn.execute("SELECT balance FROM purses WHERE account = 'H1'").fetchone() == (
        10_000 - 5 * 700 - 3 * 200,
    )
    [(kind, detail)] = alarms(office)
    assert kind == "journal_reset"
    assert detail == {
        "old_epoch": "aa" * 16,
        "new_epoch": "bb" * 16,
        "old_acked_through": 5,
        "old_records": 5,
    }
    # A late resend of the old journal is kept apart and posts nothing twice.
    assert ingest_tx(office.db, TID, first) == (0, 3, "bb" * 16)
    assert conn.execute("SELECT count(*) FROM ledger WHERE reason = 'debit'").fetchone() == (8,)


def test_records_salvaged_from_a_quarantined_journal_are_posted_once(office: Office) -> None:
    office.enroll(TID, PUB)
    office.move_money("H1", "cash", 10_000, "topup")
    old = _records(6, epoch="aa" * 16)
    ingest_tx(office.db, TID, old[:2])  # HQ had two when the terminal's file was damaged
    ingest_tx(office.db, TID, _records(1, epoch="bb" * 16))  # its new journal
    assert ingest_salvaged(office.db, TID, old) == (4, "aa" * 16, [1, 2, 3, 4, 5, 6])
    assert ingest_salvaged(office.db, TID, old) == (0, "aa" * 16, [1, 2, 3, 4, 5, 6])
    conn = office.db.conn
    assert conn.execute("SELECT balance FROM purses WHERE account = 'H1'").fetchone() == (
        10_000 - 7 * 700,
    )
    assert conn.execute("SELECT epoch, acked_through FROM terminals").fetchone() == ("bb" * 16, 1)
    assert [k for k, _ in alarms(office)] == ["journal_reset", "records_salvaged"]
    assert alarms(office)[-1][1] == {"epoch": "aa" * 16, "new": 4, "first_seq": 1, "last_seq": 6}


def test_salvaged_records_of_the_epoch_hq_still_counts_move_its_ack(office: Office) -> None:
    # The new journal has sent nothing yet: HQ's current epoch is still the damaged one.
    office.enroll(TID, PUB)
    old = _records(4, epoch="aa" * 16)
    ingest_tx(office.db, TID, old[:1])
    assert ingest_salvaged(office.db, TID, old) == (3, "aa" * 16, [1, 2, 3, 4])
    conn = office.db.conn
    assert conn.execute("SELECT epoch, acked_through FROM terminals").fetchone() == ("aa" * 16, 4)


def test_a_signed_record_naming_an_unknown_purse_is_kept_and_raised_not_refused(
    office: Office,
) -> None:
    # Refusing it made HQ drop the link and take it again for ever (a poison record).
    office.enroll(TID, PUB)
    record = _records(1)[0]
    record["split"] = [{"purse": "gold", "amount": 5}]
    record["hash"] = record_hash(record)
    assert ingest_tx(office.db, TID, [record]) == (1, 1, "")
    [(kind, detail)] = alarms(office)
    assert (kind, detail["seq"], detail["error"]) == ("posting_refused", 1, "unknown purse gold")


def test_a_record_resent_with_other_content_raises_an_alarm(office: Office) -> None:
    office.enroll(TID, PUB)
    office.move_money("H1", "cash", 10_000, "topup")
    ingest_tx(office.db, TID, _records(2))
    other = _records(2, amount=100)  # the same seqs, other content (a journal rewritten)
    assert ingest_tx(office.db, TID, other) == (0, 2, "")
    assert [kind for kind, _ in alarms(office)] == ["tx_differs", "tx_differs"]


def test_a_status_showing_a_shorter_journal_or_a_quarantine_raises_an_alarm(
    office: Office,
) -> None:
    office.enroll(TID, PUB)
    office.move_money("H1", "cash", 10_000, "topup")
    ingest_tx(office.db, TID, _records(5))
    store_status(office.db, TID, {"last_tx_seq": 5, "journal_epoch": ""})
    assert alarms(office) == []
    store_status(office.db, TID, {"last_tx_seq": 2, "journal_epoch": ""})  # seq went back
    quarantined = {"last_tx_seq": 0, "journal_epoch": "dd" * 16, "quarantined": ["t.db.x"]}
    store_status(office.db, TID, quarantined)
    store_status(office.db, TID, quarantined)  # said again: not a new alarm
    assert [kind for kind, _ in alarms(office)] == ["seq_backwards", "database_quarantined"]


def test_a_terminal_far_behind_raises_an_alarm_once_per_episode(office: Office) -> None:
    office.enroll(TID, PUB)
    far = {"degraded": True, "degraded_why": "far_behind", "behind_changes": 4999}
    store_status(office.db, TID, far)
    store_status(office.db, TID, far | {"behind_changes": 3000})  # the same episode
    store_status(office.db, TID, {"degraded": False, "degraded_why": None})
    store_status(office.db, TID, far)
    assert [kind for kind, _ in alarms(office)] == ["far_behind", "far_behind"]


def test_hq_alarms_lists_them_and_exits_1_when_there_are_any(
    office: Office, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hq = ["--dir", str(tmp_path / "hq")]
    office.enroll(TID, PUB)
    assert main([*hq, "alarms"]) == 0
    ingest_tx(office.db, TID, _records(2, epoch="aa" * 16))
    ingest_tx(office.db, TID, _records(1, epoch="bb" * 16))
    capsys.readouterr()
    assert main([*hq, "alarms", "--json"]) == 1
    [alarm] = json.loads(capsys.readouterr().out)
    assert (alarm["tid"], alarm["kind"], alarm["detail"]["new_epoch"]) == (
        TID,
        "journal_reset",
        "bb" * 16,
    )


def test_an_hq_database_from_before_epochs_is_upgraded_keeping_its_records(
    office: Office, tmp_path: Path
) -> None:
    office.enroll(TID, PUB)
    office.move_money("H1", "cash", 10_000, "topup")
    ingest_tx(office.db, TID, _records(2))
    conn = office.db.conn
    # Put the tables back as they were before epochs.
    conn.executescript(
        "CREATE TABLE old_tx (tid TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, "
        "record TEXT NOT NULL, received_at TEXT NOT NULL, PRIMARY KEY (tid, seq)) STRICT, "
        "WITHOUT ROWID; INSERT INTO old_tx SELECT tid, seq, id, record, received_at FROM tx; "
        "DROP TABLE tx; ALTER TABLE old_tx RENAME TO tx; "
        "ALTER TABLE terminals DROP COLUMN epoch; DROP INDEX ledger_by_origin_tx; "
        "CREATE UNIQUE INDEX ledger_by_origin ON ledger (origin_tid, origin_tx_seq, purse) "
        "WHERE origin_tid IS NOT NULL;"
    )
    office.db.close()
    upgraded = HqDb(tmp_path / "hq")
    rows = upgraded.conn.execute("SELECT epoch, seq FROM tx ORDER BY seq").fetchall()
    assert rows == [("", 1), ("", 2)]
    assert ingest_tx(upgraded, TID, _records(3)) == (1, 3, "")
    assert ingest_tx(upgraded, TID, _records(1, epoch="cc" * 16)) == (1, 1, "cc" * 16)
    indexes = {r[0] for r in upgraded.conn.execute("SELECT name FROM sqlite_schema")}
    assert "ledger_by_origin" not in indexes and "ledger_by_origin_tx" in indexes
    upgraded.close()


def test_a_tampered_record_is_refused(office: Office) -> None:
    office.enroll(TID, PUB)
    record = _records(1)[0] | {"amount": 1}
    with pytest.raises(Exception, match="hash does not match"):
        ingest_tx(office.db, TID, [record])


def test_import_hashes_id_numbers_and_masks_phones(office: Office, tmp_path: Path) -> None:
    sheet = tmp_path / "sheet.csv"
    columns = [
        "序号",
        "姓名",
        "性别",
        "部门",
        "职务",
        "办公楼栋",
        "身份证号",
        "手机",
        "办公电话",
        "有效期",
        "备注",
    ]
    with sheet.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerow(
            [
                "1",
                "王芳",
                "女",
                "办公厅",
                "科员",
                "市府",
                "36010219900101123X",
                "13800001234",
                "",
                "2027/12/31",
                "",
            ]
        )
        writer.writerow(
            ["2", "李强", "男", "办公厅", "科员", "市府", "not-an-id", "13800005678", "", "", ""]
        )
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "王芳13800001234.jpg").write_bytes(b"\xff\xd8\xff jpeg")
    result = import_sheet(office, sheet, unit="市政府", photos=photos)
    assert (result.holders, result.photos, len(result.skipped)) == (1, 1, 1)
    stored = office.db.conn.execute("SELECT id_hash, id_last4, phone_masked FROM people").fetchone()
    assert stored[1] is None and stored[2] == "138****1234"  # no search needs the last four
    everything = json.dumps(entries(office), ensure_ascii=False) + str(stored)
    assert "36010219900101123X" not in everything and "13800001234" not in everything
    holder_entry = entries(office)[0]["holder"]
    assert holder_entry["valid_until"] == "2027-12-31" and holder_entry["groups"] == ["市府"]


def test_import_reads_xlsx_too(office: Office, tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(
        [
            "序号",
            "姓名",
            "性别",
            "部门",
            "职务",
            "办公楼栋",
            "身份证号",
            "手机",
            "办公电话",
            "有效期",
            "备注",
        ]
    )
    sheet.append(
        [
            1,
            "赵敏",
            "女",
            "人大办",
            "主任",
            "人大",
            "360102198001011235",
            13900001111,
            None,
            None,
            None,
        ]
    )
    path = tmp_path / "sheet.xlsx"
    book.save(path)
    result = import_sheet(office, path, unit="人大")
    assert (result.holders, result.skipped) == (1, [])
    assert office.db.conn.execute("SELECT phone_masked FROM people").fetchone() == ("139****1111",)


def test_the_cli_runs_the_card_office(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hq = ["--dir", str(tmp_path / "site")]
    assert main([*hq, "init", "--site", SITE]) == 0
    printed = capsys.readouterr().out
    assert "hq_keys" in printed and "hq_root_key" in printed
    assert main([*hq, "holder", json.dumps(holder("H1"))]) == 0
    assert main([*hq, "card", "issue", card_number(1), "--holder", "H1"]) == 0
    assert main([*hq, "card", "lost", card_number(1)]) == 0
    assert main([*hq, "card", "replace", card_number(1), "--new", card_number(2)]) == 0
    assert main([*hq, "card", "unlost", card_number(1)]) == 1  # void forever
    assert "void forever" in capsys.readouterr().err
    assert main([*hq, "topup", "H1", "5000"]) == 0
    assert main([*hq, "subsidy", "grant", "H1", "3000"]) == 0
    assert main([*hq, "subsidy", "expire", "H1"]) == 0
    assert main([*hq, "holiday", "cn", "--holiday", "2027-01-01"]) == 0
    rule = {
        "id": "p1",
        "type": "price",
        "canteen": "c1",
        "period": "lunch",
        "mode": "fixed",
        "by_class": {"red": 800},
    }
    assert main([*hq, "rule", json.dumps(rule)]) == 0
    assert main([*hq, "enroll", TID, PUB]) == 0
    db = HqDb(tmp_path / "site")
    assert db.head_seq() == 10
    db.close()


def test_a_broken_chain_is_an_alarm_and_is_not_acknowledged_past(office: Office) -> None:
    office.enroll(TID, PUB)
    office.move_money("H1", "cash", 10_000, "topup")
    records = _records(5)
    draft = TransactionDraft(
        "meal", "2026-11-23T12:00:00+08:00", 3, "card", "allow", Reason.ALLOWED, 1,
        card=card_number(1), holder_id="H1", amount=700, split=(("cash", 700),),
    )  # fmt: skip
    records[2] = seal(draft, seq=3, tx_id="tx--3", prev_hash="ab" * 32, epoch="")
    _, acked, _ = ingest_tx(office.db, TID, records)
    assert acked == 2  # 3..5 held, but not acknowledged: the terminal keeps them
    _, acked, _ = ingest_tx(office.db, TID, records)  # resent
    assert acked == 2
    assert [kind for kind, _ in alarms(office)] == ["chain_break"]


def test_a_status_whose_journal_tip_is_not_what_hq_holds_raises_an_alarm(office: Office) -> None:
    office.enroll(TID, PUB)
    office.move_money("H1", "cash", 10_000, "topup")
    records = _records(3)
    ingest_tx(office.db, TID, records)
    same = {"last_tx_seq": 3, "journal_epoch": "", "last_tx_hash": records[2]["hash"]}
    store_status(office.db, TID, same)
    assert alarms(office) == []
    store_status(office.db, TID, same | {"last_tx_hash": "cd" * 32})  # rewritten at the tip
    store_status(office.db, TID, same | {"last_tx_hash": "cd" * 32})  # said again: one alarm
    assert [kind for kind, _ in alarms(office)] == ["tip_differs"]
