"""The support bundle carries no personal data: every demo holder's name and card number is
tapped, written into a log, and then searched for in the extracted bundle."""

import json
import tarfile
from pathlib import Path

import pytest

from terminal.diag.protocol import Exit
from tests.diag.conftest import DiagDaemon, run_diag
from tests.fixtures import PEOPLE

pytestmark = pytest.mark.integration

NAMES = [holder.name for holder, _, _ in PEOPLE]
NUMBERS = [card.number for _, _, cards in PEOPLE for card in cards]
ID_NUMBER = "11010519491231002X"
PHONE = "13800138000"


def _grouped(number: str, by: int = 4, sep: str = " ") -> str:
    return sep.join(number[i : i + by] for i in range(0, len(number), by))


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


def personal_log(path: Path) -> Path:
    """A log as careless software might write it: names, card, ID and phone numbers, in plain
    lines and in JSON lines (whose encoder escapes CJK), grouped, hyphenated and fullwidth."""
    pairs = list(zip(NAMES, NUMBERS, strict=False))
    lines = [f"tap by {name} card {number}" for name, number in pairs]
    lines += [f"holder id number {ID_NUMBER} phone {PHONE}", "plain line without data"]
    lines += [
        json.dumps({"message": f"tap by {name}", "card": _grouped(number), "level": "INFO"})
        for name, number in pairs
    ]
    lines += [
        json.dumps({"message": "HQ reason", "reason": f"{NAMES[0]} reported it lost, ID "
                    f"{_fullwidth(ID_NUMBER)}, call {_grouped(PHONE, 4, '-')}"}),
        f"card {_grouped(NUMBERS[0], 4, '-')} by {NAMES[1]}, phone {_fullwidth(PHONE)}",
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _forms(value: str) -> list[str]:
    """Every way the planted value was written into the log."""
    escaped = json.dumps(value)[1:-1]
    return [value, escaped, _grouped(value), _grouped(value, 4, "-"), _fullwidth(value)]


def extract(bundle: Path, into: Path) -> dict[str, str]:
    with tarfile.open(bundle) as tar:
        tar.extractall(into, filter="data")
    return {p.name: p.read_text(encoding="utf-8") for p in into.iterdir()}


def assert_no_personal_data(files: dict[str, str]) -> None:
    for name, text in files.items():
        for secret in [*NAMES, *NUMBERS, ID_NUMBER, PHONE]:
            for form in _forms(secret):
                assert form not in text, f"{secret!r} found in {name} as {form!r}"


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
