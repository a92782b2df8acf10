"""``ykt hq import``: the registration sheet into holders, or with ``--check`` only the plan."""

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from devtools.hq.db import HqDb
from devtools.hq.importer import check_sheet, import_sheet
from devtools.hq.office import Office
from devtools.hq.sheet import SheetFileError, parse_mapping

console = Console()


def _import(args: argparse.Namespace) -> int:
    """Exit 0: every row imported; 1: rows or photos refused (listed); 2: the file unreadable."""
    try:
        columns = parse_mapping(args.map)
        office = Office(HqDb(args.dir))
        plan = check_sheet(
            office,
            args.file,
            unit=args.unit,
            card_class=args.card_class,
            photos=args.photos,
            columns=columns,
        )
    except SheetFileError as exc:
        sys.stderr.write(f"ykt hq import: {exc}\n")
        return 2
    for column in plan.ignored_columns:
        console.print(f"[yellow]column {column!r} not imported[/] (add it with --map 列名=field)")
    if args.check:
        for row in plan.rows:
            console.print(
                f"row {row.line} {row.name or '-'}: {row.describe()}",
                highlight=False,
                soft_wrap=True,
            )
        for name in plan.unmatched_photos:
            console.print(
                f"photo {name}: no row has this 姓名+手机号", highlight=False, soft_wrap=True
            )
        console.print(
            f"would import {plan.summary()}; nothing written", highlight=False, soft_wrap=True
        )
        return 0 if len(plan.importable) == len(plan.rows) and not plan.unmatched_photos else 1
    encode_face = None
    if args.templates is not None:
        # Imported here: the encoders load OpenCV and a face model, which no other command needs.
        from devtools.hq.templates import photo_encoder  # noqa: PLC0415

        try:
            encode_face = photo_encoder(args.templates, args.yunet, args.faces_config)
        except ValueError as exc:
            raise SystemExit(f"ykt hq import: {exc}") from None
    result = import_sheet(
        office,
        args.file,
        unit=args.unit,
        card_class=args.card_class,
        photos=args.photos,
        progress=lambda done, total: console.print(f"{done}/{total} rows done"),
        encode_face=encode_face,
        plan=plan,
    )
    faces = "face templates" if encode_face is not None else "photos"
    console.print(f"{result.holders} holders imported, {result.photos} {faces}")
    console.print(plan.summary(), highlight=False, soft_wrap=True)
    for line in result.skipped:
        console.print(f"[yellow]skipped[/] {line}", highlight=False, soft_wrap=True)
    return 0 if not result.skipped else 1


def add_import_command(sub: Any) -> None:
    """``hq import`` (``sub``: hq's subparsers)."""
    imp: argparse.ArgumentParser = sub.add_parser(
        "import", help="import holders from the registration sheet (CSV/XLSX)"
    )
    imp.set_defaults(handler=_import)
    imp.add_argument("file", type=Path)
    imp.add_argument("--unit", required=True, help="工作单位 of everyone on the sheet")
    imp.add_argument("--class", dest="card_class", default="red", help="card class")
    imp.add_argument("--photos", type=Path, help="directory of 姓名+手机号.jpg photos")
    imp.add_argument(
        "--check",
        action="store_true",
        help="dry run: print what each row would do and the counts; write nothing",
    )
    imp.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="列名=FIELD",
        help="read a column the sheet names otherwise as FIELD (name, id_number, phone, "
        "office_phone, building, dept, title, gender, valid, note, seq); repeatable",
    )
    imp.add_argument(
        "--templates",
        choices=["dlib", "onnx", "config"],
        help="compute face templates from the photos here with this backend (the terminals' "
        "model) instead of sending the photos; onnx needs --yunet; config: the encoder of "
        "--faces-config's [faces] section (ncnn, ONNX or SFace models)",
    )
    imp.add_argument(
        "--yunet", type=Path, help="face_detection_yunet_2023mar.onnx (--templates onnx)"
    )
    imp.add_argument(
        "--faces-config", type=Path, help="a terminal's config file (--templates config)"
    )
