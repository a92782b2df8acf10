"""Importing holders from the card office's registration sheet (CSV or XLSX).

The columns are the ones the seed documents use: 序号 姓名 性别 部门 职务 办公楼栋 身份证号 手机
办公电话 有效期 备注. The ID number never leaves this module in clear: HQ keeps a salted hash and
the last four digits, and the holder id is derived from the hash, so importing the same sheet
again updates the same holders. Photos named 姓名+手机号.jpg become face templates when the
import is given a face encoder (``ykt hq import --templates``: computed once at HQ, so terminals
need not each run the encoder on every photo), else they are sent as photo changes for on-device
enrolment. Either way a photo is never sent or stored for longer than it takes to enrol it.
"""

import csv
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from devtools.hq.office import Office, OfficeError
from sync.envelope import b64encode

COLUMNS = (
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
)
REQUIRED = ("姓名", "身份证号")
ID_NUMBER = re.compile(r"^\d{17}[\dXx]$")
MAX_PHOTO = 512 * 1024


class SheetError(OfficeError):
    """Raised for a sheet that cannot be imported; names the row and column."""


@dataclass(frozen=True, slots=True)
class Imported:
    holders: int
    photos: int
    skipped: list[str]


def read_rows(path: Path) -> Iterator[dict[str, str]]:
    """Rows as {column: text}, from ``.csv`` (UTF-8, with or without BOM) or ``.xlsx``."""
    if path.suffix.lower() == ".xlsx":
        yield from _xlsx_rows(path)
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            yield {k.strip(): (v or "").strip() for k, v in row.items() if k}


def _xlsx_rows(path: Path) -> Iterator[dict[str, str]]:
    import openpyxl  # noqa: PLC0415 - only the XLSX path needs it

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = [str(c).strip() if c is not None else "" for c in next(rows, ())]
        for values in rows:
            yield {name: _cell(value) for name, value in zip(header, values, strict=False) if name}
    finally:
        book.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # spreadsheets turn long digit strings into numbers
    return str(value).strip()


def _valid_until(text: str, where: str) -> str | None:
    if not text or text in ("长期", "永久"):
        return None
    cleaned = text.replace("/", "-").replace(".", "-").replace("年", "-").replace("月", "-")
    cleaned = cleaned.replace("日", "")
    try:
        year, month, day = (int(part) for part in cleaned.split("-"))
        return date(year, month, day).isoformat()
    except ValueError:
        raise SheetError(f"{where}: 有效期 {text!r} is not a date") from None


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "*" * len(phone)


# Turns a registration photo into a face.upsert body ({"template", "model"}); raises ValueError
# with the reason a photo is refused (no face, two faces, too small, too blurry).
FaceEncoding = Callable[[bytes], Mapping[str, str]]


def import_sheet(
    office: Office,
    path: Path,
    *,
    unit: str,
    card_class: str = "red",
    photos: Path | None = None,
    progress: Any = None,
    encode_face: FaceEncoding | None = None,
) -> Imported:
    """Upsert every row's holder; rows with problems are skipped and reported, never half-done."""
    salt = office.db.meta("salt") or ""
    rows = list(read_rows(path))
    missing = [c for c in REQUIRED if rows and c not in rows[0]]
    if missing:
        raise SheetError(f"{path.name}: missing column(s) {', '.join(missing)}")
    holders = photo_count = 0
    skipped: list[str] = []
    for index, row in enumerate(rows, start=2):
        where = f"{path.name} row {index}"
        try:
            name, id_number = row.get("姓名", ""), row.get("身份证号", "").upper()
            if not name or not ID_NUMBER.match(id_number):
                raise SheetError(f"{where}: needs 姓名 and an 18-character 身份证号")
            id_hash = hashlib.sha256((salt + id_number).encode()).hexdigest()
            holder_id = "H" + id_hash[:12]
            building = row.get("办公楼栋", "")
            holder = {
                "id": holder_id,
                "name": name,
                "unit": unit,
                "dept": row.get("部门", ""),
                "class": card_class,
                "status": "active",
                "valid_until": _valid_until(row.get("有效期", ""), where),
                "groups": [building] if building else [],
                "canteens": [],
                "services": ["meal", "shop", "barber"],
                "require_face": False,
                "qr_keys": [],
            }
            private = {
                "gender": row.get("性别") or None,
                "title": row.get("职务") or None,
                "building": building or None,
                "id_hash": id_hash,
                "id_last4": id_number[-4:],
                "phone_masked": mask_phone(row.get("手机", "")) or None,
                "office_phone": row.get("办公电话") or None,
                "note": row.get("备注") or None,
            }
            office.upsert_holder({k: v for k, v in holder.items() if v is not None}, private)
            holders += 1
            photo = photos / f"{name}{row.get('手机', '')}.jpg" if photos else None
            if photo is not None and photo.is_file():
                data = photo.read_bytes()
                if len(data) > MAX_PHOTO:
                    skipped.append(f"{where}: photo larger than {MAX_PHOTO} bytes, not sent")
                elif encode_face is None:
                    office.set_face(holder_id, {"photo": b64encode(data)})
                    photo_count += 1
                else:
                    try:
                        office.set_face(holder_id, dict(encode_face(data)))
                        photo_count += 1
                    except ValueError as exc:
                        skipped.append(f"{where}: photo refused ({exc}), no template sent")
        except OfficeError as exc:
            skipped.append(str(exc))
        if progress is not None:
            progress()
    return Imported(holders, photo_count, skipped)
