"""Reading the card office's registration sheet (附件4) as the office actually fills it in.

The sheet comes from Excel or WPS: a title row and a 单位（盖章） line above the header, column
names that differ from sheet to sheet (手机 / 手机电话 / 手机号码), CSV saved in GBK, ID numbers
that Excel turned into numbers. This module turns such a file into rows keyed by field name and
checks the values that can be checked without HQ's database; what to do with each row is the
importer's business.
"""

import csv
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from devtools.hq.office import OfficeError

# Header text (after normalise()) -> field. Data, not code: a sheet with another spelling needs
# one more line here, or ``--map 列名=field`` for a one-off.
SYNONYMS: dict[str, str] = {
    "序号": "seq",
    "编号": "seq",
    "姓名": "name",
    "性别": "gender",
    "部门": "dept",
    "处室": "dept",
    "科室": "dept",
    "职务": "title",
    "职位": "title",
    "办公楼栋": "building",
    "楼栋": "building",
    "办公楼": "building",
    "单位楼栋": "building",
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "身份证": "id_number",
    "公民身份号码": "id_number",
    "手机": "phone",
    "手机电话": "phone",
    "手机号码": "phone",
    "手机号": "phone",
    "移动电话": "phone",
    "办公电话": "office_phone",
    "座机": "office_phone",
    "办公室电话": "office_phone",
    "有效期": "valid",
    "有效期限": "valid",
    "有效期至": "valid",
    "备注": "note",
}
FIELDS = frozenset(SYNONYMS.values())
REQUIRED = ("name", "id_number")
# The header's own text for each field, in messages to the office.
LABELS = {
    "seq": "序号",
    "name": "姓名",
    "gender": "性别",
    "dept": "部门",
    "title": "职务",
    "building": "办公楼栋",
    "id_number": "身份证号",
    "phone": "手机电话",
    "office_phone": "办公电话",
    "valid": "有效期",
    "note": "备注",
}
# The header is looked for this far down: above it are the title, 单位（盖章） and the date.
HEADER_SEARCH = 10

_SPACE = re.compile(r"[\s\u3000]+")
_ID_NUMBER = re.compile(r"^\d{17}[\dX]$")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_SCIENTIFIC = re.compile(r"^\d(\.\d+)?[eE]\+?\d+$")
_DATE = re.compile(
    r"(\d{4})\s*[-./年]\s*(\d{1,2})\s*[-./月]\s*(\d{1,2})\s*日?|(\d{4})(\d{2})(\d{2})(?!\d)"
)
_RANGE_FILLER = re.compile(r"^[\s\-~～—–至到]*$")
_NO_END = ("长期", "永久", "长期有效")
NUMERIC_ID = "stored as a number by Excel: format the column as text and type it again"


class SheetError(OfficeError):
    """A sheet that cannot be imported as it stands; names the row and column."""


class SheetFileError(SheetError):
    """The file itself cannot be read (missing, wrong format, unknown encoding)."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # the row's number as the office sees it in Excel (1-based, header counted)
    values: dict[str, str]
    numeric: frozenset[str] = field(default_factory=frozenset)  # fields Excel held as numbers

    def get(self, name: str) -> str:
        return self.values.get(name, "")


@dataclass(frozen=True, slots=True)
class Sheet:
    rows: list[Row]
    header_line: int
    columns: dict[str, str]  # field -> the header text it was read from
    ignored: list[str]  # header cells no field maps to


def normalise(text: str) -> str:
    """A header cell as compared: no spaces (``手 机``), no trailing marks (``姓名*``)."""
    return _SPACE.sub("", text).rstrip("*:：").replace("（", "(").replace("）", ")")


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """``--map 列名=field`` options as {normalised header: field}."""
    mapping: dict[str, str] = {}
    for item in items:
        header, sep, target = item.partition("=")
        target = target.strip()
        if not sep or not normalise(header) or target not in FIELDS:
            raise SheetFileError(
                f"--map {item!r}: expected 列名=field, field one of {', '.join(sorted(FIELDS))}"
            )
        mapping[normalise(header)] = target
    return mapping


def read_sheet(path: Path, extra: Mapping[str, str] | None = None) -> Sheet:
    """The sheet's rows below its header, as text by field; SheetFileError if it cannot be read."""
    synonyms = {**SYNONYMS, **(extra or {})}
    suffix = path.suffix.lower()
    if not path.is_file():
        raise SheetFileError(f"{path}: no such file")
    if suffix == ".xls":
        raise SheetFileError(
            f"{path.name}: an old Excel .xls file; open it in Excel or WPS and save it as .xlsx "
            "(or as CSV)"
        )
    try:
        cells = list(_xlsx_cells(path) if suffix in (".xlsx", ".xlsm") else _csv_cells(path))
    except OSError as exc:
        raise SheetFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return _parse(path.name, cells, synonyms)


def _csv_cells(path: Path) -> Iterator[list[Any]]:
    data = path.read_bytes()
    # UTF-8 first: GB18030 decodes almost any bytes, so trying it first would garble UTF-8 text.
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise SheetFileError(f"{path.name}: neither UTF-8 nor GB18030/GBK text; save it as CSV")
    dialect: Any = csv.excel_tab if "\t" in text.split("\n", HEADER_SEARCH)[0] else csv.excel
    yield from csv.reader(text.splitlines(), dialect)


def _xlsx_cells(path: Path) -> Iterator[list[Any]]:
    import openpyxl  # noqa: PLC0415 - only the XLSX path needs it
    from openpyxl.utils.exceptions import InvalidFileException  # noqa: PLC0415

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise SheetFileError(f"{path.name}: not a readable .xlsx file ({exc})") from None
    try:
        for values in book.worksheets[0].iter_rows(values_only=True):
            yield list(values)
    finally:
        book.close()


def _find_header(
    name: str, cells: Sequence[list[Any]], synonyms: Mapping[str, str]
) -> tuple[int, dict[int, str]]:
    """(index of the header row, {column index: field})."""
    for index, header in enumerate(cells[:HEADER_SEARCH]):
        columns = {
            i: synonyms[normalise(str(c))]
            for i, c in enumerate(header)
            if c is not None and normalise(str(c)) in synonyms
        }
        if all(f in columns.values() for f in REQUIRED):
            return index, columns
    wanted = " and ".join(LABELS[f] for f in REQUIRED)
    raise SheetFileError(
        f"{name}: no header row with {wanted} in the first {HEADER_SEARCH} rows "
        "(another column name? add it with --map 列名=field)"
    )


def _parse(name: str, cells: Sequence[list[Any]], synonyms: Mapping[str, str]) -> Sheet:
    index, columns = _find_header(name, cells, synonyms)
    header = cells[index]
    taken: dict[str, int] = {}
    for i, target in columns.items():
        taken.setdefault(target, i)  # the first of two columns with one meaning wins
    rows: list[Row] = []
    for offset, values in enumerate(cells[index + 1 :], start=index + 2):
        texts = {f: _text(values[i]) if i < len(values) else "" for f, i in taken.items()}
        if not any(v for f, v in texts.items() if f not in ("seq", "note")):
            continue  # blank template rows and the 填表说明 line below the table
        numeric = frozenset(
            f for f, i in taken.items() if i < len(values) and _is_number(values[i])
        )
        rows.append(Row(offset, texts, numeric))
    ignored = [str(c).strip() for i, c in enumerate(header) if i not in columns and c]
    return Sheet(rows, index + 1, {f: str(header[i]).strip() for f, i in taken.items()}, ignored)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # phone numbers typed into a number-formatted column
    return str(value).strip()


def id_number_problem(row: Row) -> str | None:
    """Why the row's 身份证号 cannot be taken, or None. Never repaired: a wrong one is refused."""
    text = row.get("id_number").upper()
    if not text:
        return "no 身份证号"
    if "id_number" in row.numeric or _SCIENTIFIC.match(text):
        # Excel keeps 15 significant digits: the last three of an 18-digit number are gone,
        # so any repair would be a guess at someone else's ID.
        return f"身份证号 {NUMERIC_ID}"
    if not _ID_NUMBER.match(text):
        return "身份证号 is not 18 characters (17 digits and a digit or X)"
    total = sum(int(d) * w for d, w in zip(text, _ID_WEIGHTS, strict=False))
    if _ID_CHECK[total % 11] != text[-1]:
        return "身份证号 check digit is wrong (GB 11643): a mistyped digit"
    return None


def id_number(row: Row) -> str:
    return row.get("id_number").upper()


def valid_until(text: str) -> str | None:
    """The end of validity of a 有效期 cell: a date, or a range whose end it is; None if none.

    Raises ValueError with the reason for text that is neither.
    """
    text = text.strip()
    if not text or text in _NO_END:
        return None
    found = list(_DATE.finditer(text))
    leftover = _DATE.sub("", text)
    if not found or len(found) > 2 or not _RANGE_FILLER.match(leftover):
        raise ValueError(f"有效期 {text!r} is not a date or a range of two dates")
    dates = []
    for match in found:
        parts = match.groups()
        year, month, day = (int(p) for p in (parts[:3] if parts[0] else parts[3:]))
        try:
            dates.append(date(year, month, day))
        except ValueError:
            raise ValueError(f"有效期 {text!r}: {match.group(0)} is not a date") from None
    if len(dates) == 2 and dates[1] < dates[0]:
        raise ValueError(f"有效期 {text!r} ends before it starts")
    return dates[-1].isoformat()
