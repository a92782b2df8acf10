"""``ykt hq import`` on registration sheets as the card office fills them in (附件4)."""

import csv
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from devtools.hq.cli import main
from devtools.hq.db import HqDb
from devtools.hq.importer import check_sheet, import_sheet
from devtools.hq.office import Office, OfficeError
from devtools.hq.sheet import SheetFileError, valid_until
from tests.sync.messages import SITE

# The red sheet's header, word for word (手机电话, not 手机).
RED = ["序号", "姓名", "性别", "部门", "职务", "办公楼栋", "身份证号", "手机电话", "办公电话",
       "备注"]  # fmt: skip
TITLE = [["市行政中心通行证（一卡通）信息录入登记表（红色卡）"], ["单位（盖章）：", "", "年 月 日"]]
WANG = ["1", "王芳", "女", "办公厅", "科员", "1号楼", "36010219900101123X", "13800001234", "", ""]
LI = ["2", "李强", "男", "办公厅", "科员", "2号楼", "360102199002021237", "13800005678", "", ""]
ZHAO_ID = "360102198001011235"


@pytest.fixture
def office(tmp_path: Path) -> Office:
    HqDb.create(tmp_path / "hq", SITE, "ykt/v1", "127.0.0.1:1883").close()
    return Office(HqDb(tmp_path / "hq"))


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def write_xlsx(path: Path, rows: list[list[Any]]) -> Path:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def people(office: Office) -> list[tuple[str, str]]:
    """(ID hash, masked phone) of every holder HQ keeps: the ID itself is not kept."""
    return office.db.conn.execute(
        "SELECT id_hash, phone_masked FROM people ORDER BY phone_masked"
    ).fetchall()


def hashed(office: Office, id_number: str) -> str:
    return office.db.id_digest(id_number)


def changes(office: Office) -> int:
    return office.db.head_seq()


def test_the_office_header_with_title_rows_above_it_and_photos(
    office: Office, tmp_path: Path
) -> None:
    sheet = write_xlsx(
        tmp_path / "red.xlsx", [*TITLE, RED, WANG, LI, ["填表说明：表格按照模版录入"]]
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "王芳13800001234.jpg").write_bytes(b"\xff\xd8\xff jpeg")
    (photos / "张三13900000000.jpg").write_bytes(b"\xff\xd8\xff jpeg")
    result = import_sheet(office, sheet, unit="市政府", photos=photos)
    assert (result.holders, result.photos) == (2, 1)
    assert people(office) == [
        (hashed(office, WANG[6]), "138****1234"),
        (hashed(office, LI[6]), "138****5678"),
    ]
    assert any("张三13900000000.jpg" in line for line in result.skipped)
    assert result.plan is not None and result.plan.unmatched_photos == ["张三13900000000.jpg"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_csv_in_every_encoding_excel_writes(office: Office, tmp_path: Path, encoding: str) -> None:
    sheet = write_csv(tmp_path / "sheet.csv", [*TITLE, RED, WANG], encoding)
    result = import_sheet(office, sheet, unit="市政府")
    assert (result.holders, result.skipped) == (1, [])
    line = office.db.changes_after(0, 10)[0]["holder"]
    assert line["name"] == "王芳" and line["dept"] == "办公厅"


@pytest.mark.parametrize(
    ("header", "value"), [("手机", "13800001234"), ("手机号码", "13800001234"), ("联系方式", "")]
)
def test_column_synonyms_and_map(office: Office, tmp_path: Path, header: str, value: str) -> None:
    columns = [header if c == "手机电话" else c for c in RED]
    sheet = write_csv(tmp_path / "sheet.csv", [columns, WANG])
    plan = check_sheet(office, sheet, unit="市政府")
    assert plan.rows[0].private["phone_masked"] == ("138****1234" if value else None)
    assert plan.ignored_columns == ([header] if not value else [])
    mapped = check_sheet(office, sheet, unit="市政府", columns={header: "phone"})
    assert mapped.rows[0].private["phone_masked"] == "138****1234"


def test_map_option_on_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hq = ["--dir", str(tmp_path / "site")]
    assert main([*hq, "init", "--site", SITE]) == 0
    sheet = write_csv(tmp_path / "s.csv", [[c.replace("手机电话", "联系方式") for c in RED], WANG])
    assert main([*hq, "import", str(sheet), "--unit", "u", "--map", "联系方式=phone"]) == 0
    assert main([*hq, "import", str(sheet), "--unit", "u", "--map", "联系方式=phoen"]) == 2
    assert "expected 列名=field" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("old.xls", b"\xd0\xcf\x11\xe0", "save it as .xlsx"),
        ("gone.csv", None, "no such file"),
        ("broken.xlsx", b"not a zip", "not a readable .xlsx"),
        ("latin.csv", "姓名,身份证号\n".encode("utf-16"), "neither UTF-8 nor GB18030"),
        ("nohead.csv", b"a,b\n1,2\n", "no header row with 姓名 and 身份证号"),
    ],
)
def test_an_unreadable_file_is_a_clear_error_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | None,
    message: str,
) -> None:
    hq = ["--dir", str(tmp_path / "site")]
    assert main([*hq, "init", "--site", SITE]) == 0
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main([*hq, "import", str(path), "--unit", "u"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_id_numbers_stored_as_numbers_are_refused_never_guessed(
    office: Office, tmp_path: Path
) -> None:
    as_float = [3, "赵敏", "女", "人大办", "主任", "人大", float(ZHAO_ID), 13900001111, None, None]
    as_int = [4, "钱进", "男", "人大办", "科员", "人大", int(ZHAO_ID), 13900002222, None, None]
    typed = [5, "孙丽", "女", "人大办", "科员", "人大", ZHAO_ID, 13900003333, None, None]
    sheet = write_xlsx(tmp_path / "s.xlsx", [RED, as_float, as_int, typed])
    result = import_sheet(office, sheet, unit="人大")
    assert result.holders == 1
    assert people(office) == [(hashed(office, ZHAO_ID), "139****3333")]
    refused = [line for line in result.skipped if "stored as a number by Excel" in line]
    assert [line.split(":")[0] for line in refused] == ["s.xlsx row 2", "s.xlsx row 3"]
    # A CSV Excel saved from such a column holds its scientific notation.
    csv_sheet = write_csv(tmp_path / "s.csv", [RED, [*WANG[:6], "3.60102E+17", *WANG[7:]]])
    assert "stored as a number by Excel" in check_sheet(office, csv_sheet, unit="u").rows[0].reason


@pytest.mark.parametrize(
    ("number", "accepted"),
    [
        ("36010219900101123X", True),
        ("36010219900101123x", True),
        ("360102199001011230", False),  # check digit mistyped
        ("360102199001011", False),  # the old 15-digit form
        ("36010219900101123Y", False),
    ],
)
def test_the_gb11643_check_digit(
    office: Office, tmp_path: Path, number: str, accepted: bool
) -> None:
    sheet = write_csv(tmp_path / "s.csv", [RED, [*WANG[:6], number, *WANG[7:]]])
    row = check_sheet(office, sheet, unit="u").rows[0]
    assert (row.outcome == "new") is accepted
    if number.endswith("0"):
        assert "check digit" in row.reason


@pytest.mark.parametrize(
    ("text", "end"),
    [
        ("2027/12/31", "2027-12-31"),
        ("2027年6月30日", "2027-06-30"),
        ("2026.01.01-2027.06.30", "2027-06-30"),
        ("2026-01-01至2027-06-30", "2027-06-30"),
        ("2026.1.1 ~ 2027.6.30", "2027-06-30"),
        ("20260101-20270630", "2027-06-30"),
        ("长期", None),
        ("", None),
    ],
)
def test_validity_as_a_date_or_a_range(text: str, end: str | None) -> None:
    assert valid_until(text) == end


@pytest.mark.parametrize("text", ["明年", "2027-02-30", "2027.06.30-2026.01.01", "2026-2027"])
def test_validity_that_is_neither_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="有效期"):
        valid_until(text)


def test_blue_sheet_validity_range_is_the_end(office: Office, tmp_path: Path) -> None:
    blue = [*RED[:-1], "有效期", "备注"]
    sheet = write_csv(tmp_path / "b.csv", [blue, [*WANG[:-1], "2026.01.01-2027.06.30", ""]])
    assert import_sheet(office, sheet, unit="u", card_class="blue").skipped == []
    assert office.db.changes_after(0, 10)[0]["holder"]["valid_until"] == "2027-06-30"


def test_duplicates_in_the_file_are_reported_per_row_and_counted_exactly(
    office: Office, tmp_path: Path
) -> None:
    same_id = ["3", "王芳芳", "女", "办公厅", "科员", "1号楼", WANG[6], "13800009999", "", ""]
    same_phone = ["4", "张伟", "男", "办公厅", "科员", "1号楼", ZHAO_ID, WANG[7], "", ""]
    sheet = write_csv(tmp_path / "s.csv", [RED, WANG, LI, same_id, same_phone])
    result = import_sheet(office, sheet, unit="u")
    assert result.holders == 2
    assert result.skipped == [
        "s.csv row 4: duplicate of row 2 (same 身份证号), not imported",
        "s.csv row 5: duplicate of row 2 (same 手机电话), not imported",
    ]
    assert office.db.conn.execute("SELECT count(*) FROM people").fetchone() == (2,)


def test_check_prints_each_row_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hq = ["--dir", str(tmp_path / "site")]
    assert main([*hq, "init", "--site", SITE]) == 0
    first = write_csv(tmp_path / "first.csv", [RED, WANG])
    assert main([*hq, "import", str(first), "--unit", "u"]) == 0
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "李强13800005678.jpg").write_bytes(b"\xff\xd8\xff jpeg")
    (photos / "陌生人13000000000.jpg").write_bytes(b"\xff\xd8\xff jpeg")
    bad = ["3", "赵敏", "女", "", "", "", "360102198001011230", "13900001111", "", ""]
    dup = ["4", "王芳", "女", "", "", "", WANG[6], "13800001234", "", ""]
    sheet = write_csv(tmp_path / "s.csv", [*TITLE, RED, WANG, LI, bad, dup])
    db = HqDb(tmp_path / "site")
    before = db.head_seq()
    capsys.readouterr()
    code = main([*hq, "import", str(sheet), "--unit", "u", "--photos", str(photos), "--check"])
    out = capsys.readouterr().out
    assert code == 1
    assert db.head_seq() == before
    assert db.conn.execute("SELECT count(*) FROM people").fetchone() == (1,)
    db.close()
    lines = out.splitlines()
    assert any(line.startswith("row 4 王芳: update of holder H") for line in lines)
    assert any(line.startswith("row 5 李强: new holder H") and "李强13800005678.jpg" in line
               for line in lines)  # fmt: skip
    assert any(line.startswith("row 6 赵敏: refused: 身份证号 check digit") for line in lines)
    assert any(line.startswith("row 7 王芳: duplicate of row 4") for line in lines)
    assert "photo 陌生人13000000000.jpg: no row has this 姓名+手机号" in lines
    assert lines[-1] == (
        "would import 4 rows: 1 new, 1 updated, 1 refused, 1 duplicate in file; "
        "photos: 1 matched, 1 unmatched; nothing written"
    )


def test_reading_does_not_raise_for_a_missing_photo_directory(
    office: Office, tmp_path: Path
) -> None:
    sheet = write_csv(tmp_path / "s.csv", [RED, WANG])
    with pytest.raises(SheetFileError, match="no such directory"):
        check_sheet(office, sheet, unit="u", photos=tmp_path / "nowhere")


def test_rows_are_written_in_batches_and_a_failing_row_takes_no_other_with_it(
    office: Office, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = ["36010219900101123X", "360102199002021237", ZHAO_ID, "110101199003074477"]
    rows = [
        [str(n), f"人{n}", "", "", "", "", i, f"1380000000{n}", "", ""] for n, i in enumerate(ids)
    ]
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(4):
        (photos / f"人{n}1380000000{n}.jpg").write_bytes(b"\xff\xd8\xff jpeg")
    put_face = office.put_face

    def refuse_the_third(conn: Any, holder_id: str, body: Any) -> int:
        if holder_id == result_plan.rows[2].holder_id:
            raise OfficeError("face: refused")
        return put_face(conn, holder_id, body)

    sheet = write_csv(tmp_path / "s.csv", [RED, *rows])
    result_plan = check_sheet(office, sheet, unit="u", photos=photos)
    monkeypatch.setattr(office, "put_face", refuse_the_third)
    calls: list[tuple[int, int]] = []
    result = import_sheet(
        office, sheet, unit="u", plan=result_plan, batch=3, progress=lambda *a: calls.append(a)
    )
    assert calls == [(3, 4), (4, 4)]
    assert (result.holders, result.photos) == (3, 3)
    assert result.skipped == ["s.csv row 4: face: refused"]
    # The refused row left neither its holder nor its private row behind.
    assert office.db.conn.execute("SELECT count(*) FROM people").fetchone() == (3,)
    assert changes(office) == 6
