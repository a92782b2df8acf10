"""The reference HQ's card office, ledger and intake, without a broker."""

import csv
import json
from pathlib import Path

import pytest

from models.canonical import ZERO_HASH
from models.journal import TransactionDraft, seal
from models.reasons import Reason
from sync.changes import parse_change
from sync.hq.cli import main
from sync.hq.db import HqDb
from sync.hq.importer import import_sheet
from sync.hq.intake import ingest_tx
from sync.hq.office import Office, OfficeError, denies_in
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


def _records(count: int) -> list[dict]:
    records, prev = [], ZERO_HASH
    for seq in range(1, count + 1):
        draft = TransactionDraft(
            "meal", "2026-11-23T12:00:00+08:00", seq, "card", "allow", Reason.ALLOWED, 1,
            card=card_number(1), holder_id="H1", amount=700, split=(("cash", 700),),
        )  # fmt: skip
        record = seal(draft, seq=seq, tx_id=f"tx-{seq}", prev_hash=prev)
        records.append(record)
        prev = record["hash"]
    return records


def test_tx_is_stored_and_posted_once_whatever_arrives_twice(office: Office) -> None:
    office.enroll(TID, PUB)
    office.move_money("H1", "cash", 10_000, "topup")
    records = _records(5)
    assert ingest_tx(office.db, TID, records[2:4]) == (2, 0)  # out of order: nothing to ack yet
    assert ingest_tx(office.db, TID, records[:3]) == (2, 4)
    assert ingest_tx(office.db, TID, records) == (1, 5)
    assert ingest_tx(office.db, TID, records) == (0, 5)
    conn = office.db.conn
    assert conn.execute("SELECT balance FROM purses WHERE account = 'H1'").fetchone() == (6500,)
    debits = conn.execute("SELECT count(*) FROM ledger WHERE reason = 'debit'").fetchone()
    assert debits == (5,)
    echoed = [e for e in entries(office) if e["kind"] == "ledger" and "origin" in e["entry"]]
    assert [e["entry"]["origin"]["tx_seq"] for e in echoed] == [3, 4, 1, 2, 5]


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
    assert stored[1] == "123X" and stored[2] == "138****1234"
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
            "360102198001011234",
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
    assert "hq_keys" in capsys.readouterr().out
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
    rule = {"id": "p1", "type": "price", "canteen": "c1", "period": "lunch", "mode": "fixed",
            "by_class": {"red": 800}}  # fmt: skip
    assert main([*hq, "rule", json.dumps(rule)]) == 0
    assert main([*hq, "enroll", TID, PUB]) == 0
    db = HqDb(tmp_path / "site")
    assert db.head_seq() == 10
    db.close()
