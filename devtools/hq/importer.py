"""Importing holders from the card office's registration sheet (CSV or XLSX).

Reading the file (header row, column names, encodings, cell types) is devtools.hq.sheet's; here
each row becomes a plan (a new holder, an update of one, refused with the reason, a duplicate of
an earlier row) that ``--check`` prints and the import carries out, so the dry run and the import
never disagree. A row is imported whole or not at all.

The ID number never leaves this module in clear: HQ keeps a keyed hash of it (HMAC with a key
outside the database, devtools.hq.idkey), and the holder id is derived from the hash, so
importing the same sheet again updates the same holders. Photos named 姓名+手机号.jpg become
face templates when the import is given a face encoder (``ykt hq import --templates``: computed
once at HQ, so terminals need not each run the encoder on every photo), else they are sent as
photo changes for on-device enrolment. Either way a photo is never sent or stored for longer
than it takes to enrol it.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.hq.office import Office, OfficeError
from devtools.hq.sheet import (
    LABELS,
    Row,
    Sheet,
    SheetError,
    SheetFileError,
    id_number,
    id_number_problem,
    read_sheet,
    valid_until,
)
from sync.changes import parse_holder
from sync.envelope import Rejected, b64encode

__all__ = ["SheetError", "SheetFileError", "check_sheet", "import_sheet", "plan_sheet"]

MAX_PHOTO = 512 * 1024
BATCH = 200
PHOTO_SUFFIXES = (".jpg", ".jpeg")

NEW, UPDATE, REFUSED, DUPLICATE = "new", "update", "refused", "duplicate"


@dataclass(slots=True)
class RowPlan:
    line: int
    name: str
    outcome: str
    reason: str = ""
    holder_id: str = ""
    duplicate_of: int = 0
    holder: dict[str, Any] = field(default_factory=dict)
    private: dict[str, str | None] = field(default_factory=dict)
    photo: Path | None = None
    photo_problem: str = ""

    def describe(self) -> str:
        """One line for the office: what importing this row does (or why it does not)."""
        if self.outcome == NEW:
            text = f"new holder {self.holder_id}"
        elif self.outcome == UPDATE:
            text = f"update of holder {self.holder_id}"
        elif self.outcome == DUPLICATE:
            text = f"duplicate of row {self.duplicate_of} ({self.reason}), not imported"
        else:
            text = f"refused: {self.reason}"
        if self.photo_problem:
            text += f"; {self.photo_problem}"
        elif self.photo is not None:
            text += f"; photo {self.photo.name}"
        return text


@dataclass(slots=True)
class Plan:
    source: str
    rows: list[RowPlan]
    ignored_columns: list[str]
    unmatched_photos: list[str]  # photo files no importable row names
    photos_given: bool

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.rows if r.outcome == outcome)

    @property
    def importable(self) -> list[RowPlan]:
        return [r for r in self.rows if r.outcome in (NEW, UPDATE)]

    @property
    def photos_matched(self) -> int:
        return sum(1 for r in self.importable if r.photo is not None and not r.photo_problem)

    def summary(self) -> str:
        text = (
            f"{len(self.rows)} rows: {self.count(NEW)} new, {self.count(UPDATE)} updated, "
            f"{self.count(REFUSED)} refused, {self.count(DUPLICATE)} duplicate in file"
        )
        if self.photos_given:
            text += (
                f"; photos: {self.photos_matched} matched, {len(self.unmatched_photos)} unmatched"
            )
        return text


@dataclass(frozen=True, slots=True)
class Imported:
    holders: int
    photos: int
    skipped: list[str]
    plan: Plan | None = None


# Turns a registration photo into a face.upsert body ({"template", "model"}); raises ValueError
# with the reason a photo is refused (no face, two faces, too small, too blurry).
FaceEncoding = Callable[[bytes], Mapping[str, str]]


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "*" * len(phone)


def _phone(row: Row) -> str:
    # Only as compared and as in photo names: the office types 138 0000 1234 and 138-0000-1234.
    return "".join(c for c in row.get("phone") if c.isdigit())


def _photo_index(photos: Path | None) -> dict[str, Path]:
    if photos is None:
        return {}
    if not photos.is_dir():
        raise SheetFileError(f"{photos}: no such directory of photos")
    return {
        p.stem.replace(" ", ""): p
        for p in sorted(photos.iterdir())
        if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()
    }


def _existing(office: Office, holder_id: str) -> bool:
    row = office.db.conn.execute(
        "SELECT 1 FROM state WHERE kind = 'holder' AND key = ?", (holder_id,)
    ).fetchone()
    return row is not None


def _plan_row(row: Row, *, digest: Callable[[str], str], unit: str, card_class: str) -> RowPlan:
    name = row.get("name")
    plan = RowPlan(row.line, name, REFUSED)
    problem = "no 姓名" if not name else id_number_problem(row)
    if problem is None:
        try:
            until = valid_until(row.get("valid"))
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        plan.reason = problem
        return plan
    id_hash = digest(id_number(row))
    plan.holder_id = "H" + id_hash[:12]
    building = row.get("building")
    holder = {
        "id": plan.holder_id,
        "name": name,
        "unit": unit,
        "dept": row.get("dept"),
        "class": card_class,
        "status": "active",
        "valid_until": until,
        "groups": [building] if building else [],
        "canteens": [],
        "services": ["meal", "shop", "barber"],
        "require_face": False,
        "qr_keys": [],
    }
    plan.holder = {k: v for k, v in holder.items() if v is not None}
    try:
        parse_holder(plan.holder)
    except Rejected as exc:
        # What a terminal would refuse is refused here, not published.
        plan.reason = str(exc.detail)
        return plan
    plan.private = {
        "gender": row.get("gender") or None,
        "title": row.get("title") or None,
        "building": building or None,
        "id_hash": id_hash,
        "id_last4": id_number(row)[-4:],
        "phone_masked": mask_phone(_phone(row)) or None,
        "office_phone": row.get("office_phone") or None,
        "note": row.get("note") or None,
    }
    plan.outcome = NEW
    return plan


def plan_sheet(
    office: Office,
    sheet: Sheet,
    *,
    source: str,
    unit: str,
    card_class: str = "red",
    photos: Path | None = None,
) -> Plan:
    """What importing ``sheet`` would do, row by row; reads HQ's database, writes nothing."""
    office.db.id_key()  # a missing key or old-style hashes refuse the sheet, not each row
    index = _photo_index(photos)
    used: set[str] = set()
    by_id: dict[str, int] = {}
    by_phone: dict[str, int] = {}
    planned: list[RowPlan] = []
    for row in sheet.rows:
        plan = _plan_row(row, digest=office.db.id_digest, unit=unit, card_class=card_class)
        planned.append(plan)
        if plan.outcome == REFUSED:
            continue
        phone = _phone(row)
        # Two rows of one person would be merged into one holder with the last row's data, and
        # two people with one phone would share a photo name: neither is guessed at.
        if plan.holder_id in by_id:
            plan.outcome, plan.duplicate_of = DUPLICATE, by_id[plan.holder_id]
            plan.reason = f"same {LABELS['id_number']}"
            continue
        if phone and phone in by_phone:
            plan.outcome, plan.duplicate_of = DUPLICATE, by_phone[phone]
            plan.reason = f"same {LABELS['phone']}"
            continue
        by_id[plan.holder_id] = row.line
        if phone:
            by_phone[phone] = row.line
        if _existing(office, plan.holder_id):
            plan.outcome = UPDATE
        if photos is not None:
            stem = f"{plan.name}{phone}".replace(" ", "")
            plan.photo = index.get(stem)
            used.add(stem)
            if plan.photo is None:
                plan.photo_problem = f"no photo {stem}.jpg"
            elif plan.photo.stat().st_size > MAX_PHOTO:
                plan.photo_problem = f"photo larger than {MAX_PHOTO} bytes, not sent"
    unmatched = [p.name for stem, p in index.items() if stem not in used]
    return Plan(source, planned, sheet.ignored, unmatched, photos is not None)


def check_sheet(
    office: Office,
    path: Path,
    *,
    unit: str,
    card_class: str = "red",
    photos: Path | None = None,
    columns: Mapping[str, str] | None = None,
) -> Plan:
    """``ykt hq import --check``: the plan of the real import, nothing written."""
    sheet = read_sheet(path, columns)
    return plan_sheet(
        office, sheet, source=path.name, unit=unit, card_class=card_class, photos=photos
    )


def import_sheet(
    office: Office,
    path: Path,
    *,
    unit: str,
    card_class: str = "red",
    photos: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    encode_face: FaceEncoding | None = None,
    columns: Mapping[str, str] | None = None,
    plan: Plan | None = None,
    batch: int = BATCH,
) -> Imported:
    """Upsert every importable row's holder; the others are reported, never half-done.

    ``batch`` rows are written in one transaction (a commit per row is an fsync per row), each
    row in a savepoint of its own so a row the office refuses takes no other row with it.
    ``progress(rows done, rows)`` is called after each batch.
    """
    if plan is None:
        plan = check_sheet(office, path, unit=unit, card_class=card_class, photos=photos,
                           columns=columns)  # fmt: skip
    holders = photo_count = 0
    skipped: list[str] = []
    for start in range(0, len(plan.rows), batch):
        rows = plan.rows[start : start + batch]
        # Faces are encoded before the transaction: an encoder takes a tenth of a second a
        # photo, too long to hold HQ's write lock while `serve` waits to store records.
        faces = {id(r): _face(r, encode_face) for r in rows}
        with office.db.tx() as conn:
            for row in rows:
                where = f"{plan.source} row {row.line}"
                if row.outcome not in (NEW, UPDATE):
                    skipped.append(f"{where}: {row.describe()}")
                    continue
                face, problem = faces[id(row)]
                if problem:
                    skipped.append(f"{where}: {problem}")
                conn.execute("SAVEPOINT import_row")
                try:
                    office.put_holder(conn, row.holder, row.private)
                    if face is not None:
                        office.put_face(conn, row.holder_id, face)
                except OfficeError as exc:
                    conn.execute("ROLLBACK TO import_row")
                    skipped.append(f"{where}: {exc}")
                else:
                    holders += 1
                    photo_count += face is not None
                conn.execute("RELEASE import_row")
        if progress is not None:
            progress(start + len(rows), len(plan.rows))
    for name in plan.unmatched_photos:
        skipped.append(f"photo {name}: no row of {plan.source} has this 姓名+手机号")
    return Imported(holders, photo_count, skipped, plan)


def _face(row: RowPlan, encode_face: FaceEncoding | None) -> tuple[dict[str, Any] | None, str]:
    """The row's face.upsert body or None, and why a photo it has is not sent."""
    if row.outcome not in (NEW, UPDATE) or row.photo is None:
        return None, ""
    if row.photo_problem:
        return None, row.photo_problem
    data = row.photo.read_bytes()
    if encode_face is None:
        return {"photo": b64encode(data)}, ""
    try:
        return dict(encode_face(data)), ""
    except ValueError as exc:
        return None, f"photo refused ({exc}), no template sent"
