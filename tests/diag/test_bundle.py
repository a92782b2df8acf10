"""The support bundle carries no personal data: every demo holder's name and card number is
tapped, written into a log, and then searched for in the extracted bundle."""

import json
import tarfile
from pathlib import Path

import pytest

from terminal.demo_site import PEOPLE
from terminal.diag.protocol import Exit
from tests.diag.conftest import DiagDaemon, run_diag

pytestmark = pytest.mark.integration

NAMES = [holder.name for holder, _, _ in PEOPLE]
NUMBERS = [card.number for _, _, cards in PEOPLE for card in cards]
ID_NUMBER = "11010519491231002X"
PHONE = "13800138000"


def personal_log(path: Path) -> Path:
    """A log as careless software might write it: names, card, ID and phone numbers."""
    lines = [f"tap by {name} card {number}" for name, number in zip(NAMES, NUMBERS, strict=False)]
    lines += [f"holder id number {ID_NUMBER} phone {PHONE}", "plain line without data"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def extract(bundle: Path, into: Path) -> dict[str, str]:
    with tarfile.open(bundle) as tar:
        tar.extractall(into, filter="data")
    return {p.name: p.read_text(encoding="utf-8") for p in into.iterdir()}


def assert_no_personal_data(files: dict[str, str]) -> None:
    for name, text in files.items():
        for secret in [*NAMES, *NUMBERS, ID_NUMBER, PHONE]:
            assert secret not in text, f"{secret!r} found in {name}"


def test_bundle_has_no_personal_data(door: DiagDaemon, tmp_path: Path) -> None:
    before = door.journal_count()
    for number in NUMBERS:
        door.send(f"tap {number} seq=1")
    door.wait_journal(before + len(NUMBERS))
    log = personal_log(tmp_path / "ykt.log")
    for form in ((), ("--json",)):
        out_file = tmp_path / f"bundle{len(form)}.tar.gz"
        code, out, err = run_diag(
            "bundle", "--out", str(out_file), "--log", str(log), "--socket", str(door.socket), *form
        )
        assert code in (Exit.OK, Exit.DEGRADED), err
        summary = json.loads(out) if form else None
        if summary:
            assert summary["source"] == "daemon" and summary["path"] == str(out_file)
        else:
            assert "bundle written" in out
        assert out_file.stat().st_mode & 0o777 == 0o600
        files = extract(out_file, tmp_path / f"x{len(form)}")
        assert set(files) == {
            "README.txt",
            "manifest.json",
            "status.json",
            "config.json",
            "events.json",
            "database.json",
            "log.txt",
        }
        assert_no_personal_data(files)
        # Redacted, not dropped: the support desk still sees which card and what happened.
        assert "3601************0005" in files["log.txt"]
        assert "张*" in files["log.txt"]
        assert "holder names masked" in json.loads(files["manifest.json"])["log"]
        events = json.loads(files["events.json"])
        assert any(e["type"] == "lost_card_used" for e in events)
        assert all("holder_id" not in e for e in events)
        database = json.loads(files["database.json"])
        assert database["check"]["journal"]["chain"] == "ok"
        assert database["statistics"]["counts"]["journal"] >= len(NUMBERS)


def test_bundle_refuses_to_overwrite(door: DiagDaemon, tmp_path: Path) -> None:
    existing = tmp_path / "taken.tar.gz"
    existing.write_bytes(b"keep me")
    code, _, err = run_diag("bundle", "--out", str(existing), "--socket", str(door.socket))
    assert code == Exit.FAILED and "exists" in err
    assert existing.read_bytes() == b"keep me"
