"""The pieces of diag that need no daemon: redaction, access rules, levels, parser wiring."""

import argparse
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from pydantic import ValidationError

from models.errors import StoreError
from models.journal import TransactionDraft
from models.reasons import Reason
from terminal import config as config_module
from terminal.config.diag import DEFAULT_GROUP, DEFAULT_SOCKET, DiagSection
from terminal.diag import bundle, commands, facts, redact, render
from terminal.diag.cli import add_diag_commands
from terminal.diag.protocol import Exit, Level, exit_for, worst
from terminal.diag.server import Access
from terminal.store import Store


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 36010020260000000001 denied", "card 3601************0001 denied"),
        ("id 11010519491231002X", "id 1101**********002X"),
        ("phone 13800138000", "phone *******8000"),
        ("seq 12345 at 2027-01-04T08:00:00Z", "seq 12345 at 2027-01-04T08:00:00Z"),
    ],
)
def test_digit_runs_are_masked(text: str, expected: str) -> None:
    assert redact.mask_digits(text) == expected


def test_names_found_in_text_are_masked() -> None:
    text = "张伟到了, Zhang Wei too; 张伟伟 is someone else"
    candidates = redact.name_candidates(text)
    assert {"张伟", "张伟伟", "Zhang Wei"} <= candidates
    scrubbed = redact.scrub_names(text, {"张伟伟", "张伟", "Zhang Wei"})
    assert "张伟" not in scrubbed and "Zhang Wei" not in scrubbed
    assert scrubbed.startswith("张*到了, Z********")


def test_config_secrets_are_redacted_but_references_kept() -> None:
    dumped = {
        "reader": {"key_store": {"type": "software", "key_file": "credential:card-keys"}},
        "sync": {"password": "hunter2", "password_file": "file:/etc/ykt/mqtt", "host": "hq"},
    }
    redacted = redact.redact_config(dumped)
    assert redacted["reader"]["key_store"]["key_file"] == "credential:card-keys"
    assert redacted["sync"] == {
        "password": redact.REDACTED,
        "password_file": "file:/etc/ykt/mqtt",
        "host": "hq",
    }


def test_diag_section_defaults_and_unknown_keys() -> None:
    section = DiagSection()
    assert section.socket == DEFAULT_SOCKET == Path("/run/ykt-terminal/diag.sock")
    assert section.group == DEFAULT_GROUP == "ykt-diag"
    with pytest.raises(ValidationError, match=r"Extra inputs"):
        DiagSection.model_validate({"sokcet": "/run/x.sock"})
    assert all(f.description for f in DiagSection.model_fields.values())


def test_access_rules() -> None:
    access = Access("no-such-group-for-ykt-tests")
    assert access.check(0, 0) is None
    assert access.check(os.geteuid(), os.getegid()) is None
    refused = access.check(65534, 65534)
    assert refused is not None and "does not exist" in refused


def test_levels_map_to_exit_codes() -> None:
    assert worst(["ok", "degraded", "ok"]) is Level.DEGRADED
    assert worst(["degraded", "failed"]) is Level.FAILED
    assert exit_for({"level": "ok"}) is Exit.OK
    assert exit_for({"level": "degraded"}) is Exit.DEGRADED
    assert exit_for({"level": "failed"}) is Exit.FAILED
    assert exit_for({"level": "not_available"}) is Exit.NOT_AVAILABLE
    assert len({int(e) for e in Exit}) == len(Exit)


def test_assess_names_every_problem() -> None:
    status = {
        "daemon": {"running": True},
        "devices": {"reader": {"ok": True}, "gate": {"ok": False, "state": "silent"}},
        "database": {"schema_version": 5, "schema_latest": 5},
        "sync": {"enabled": True, "head_expired": True, "outbox": {"oldest_age_s": 7200}},
        "clock": {"ntp_synchronized": False, "behind_journal_s": 600},
        "disk": {"free_bytes": 10**9, "free_pct": 50.0},
    }
    level, problems = commands.assess(status)
    assert level is Level.FAILED
    assert problems[0].startswith("gate: silent")
    assert any("head has expired" in p for p in problems)
    assert any("120 min old" in p for p in problems)
    assert any("NTP" in p for p in problems)
    assert any("behind the newest journal record" in p for p in problems)


def test_a_clock_put_right_is_not_warned_about_once_hq_vouches_for_it() -> None:
    def clock_problems(clock: dict[str, object]) -> list[str]:
        status = {
            "daemon": {"running": True},
            "database": {"schema_version": 5, "schema_latest": 5},
            "clock": {"ntp_synchronized": True, **clock},
            "disk": {"free_bytes": 10**9, "free_pct": 50.0},
        }
        return [p for p in commands.assess(status)[1] if p.startswith("clock")]

    # Records stamped a day ahead by a clock since corrected, and HQ's head agrees with it now.
    assert clock_problems({"behind_journal_s": 86_398, "hq_offset_s": 1.5}) == []
    # No head vouches for it: the clock may have been set back, say so.
    assert clock_problems({"behind_journal_s": 86_398, "hq_offset_s": None}) != []
    # A clock far from HQ's is named whatever the journal says.
    assert clock_problems({"behind_journal_s": 0, "hq_offset_s": -3600.0}) == [
        "clock: -3600 s from HQ's clock (by HQ's last head)"
    ]


def test_bad_frames_from_the_board_are_a_problem_only_while_they_grow_fast() -> None:
    def problems(recent: int) -> list[str]:
        status = {
            "daemon": {"running": True},
            "database": {"schema_version": 5, "schema_latest": 5},
            "devices": {"gate": {"ok": True, "state": "ok", "detail": ""}},
            "gate_link": {
                "bad_frames": 926_444,
                "bad_frames_recent": recent,
                "recent_s": 300,
                "bad_frame_reasons": {"bad_crc": 926_000, "garbage": 444},
                "alarms": {"raised": {}, "repeats": {}, "flooded": {}, "flooding": False},
            },
            "disk": {"free_bytes": 10**9, "free_pct": 50.0},
        }
        found = commands.assess(status)[1]
        return [p for p in found if p.startswith("gate link")]

    assert problems(commands.BAD_FRAMES_RECENT_MAX) == []  # a long-past burst is history
    assert problems(812) == [
        "gate link: 812 bad frames from the board in the last 5 min (926444 since start; "
        "bad_crc 926000, garbage 444): check the serial cable, its shielding and the baud rate"
    ]
    rows = dict(render.status_rows({"gate_link": {"bad_frames": 7, "bad_frames_recent": 2}}))
    assert rows["gate link"].startswith("bad frames 7 (2 in the last 5 min)")


def test_board_alarm_repeats_and_floods_are_shown_and_a_flood_is_a_problem() -> None:
    alarms = {
        "raised": {"tamper": 1},
        "repeats": {"tamper": 598},
        "flooded": {"door_forced": 4},
        "flooding": True,
    }
    status = {
        "daemon": {"running": True},
        "database": {"schema_version": 5, "schema_latest": 5},
        "gate_link": {"bad_frames": 0, "bad_frames_recent": 0, "recent_s": 300, "alarms": alarms},
        "disk": {"free_bytes": 10**9, "free_pct": 50.0},
    }
    assert [p for p in commands.assess(status)[1] if p.startswith("gate")] == [
        "gate alarms: flooding, 4 not raised one by one (door_forced 4); 598 repeats folded "
        "(tamper 598): see ykt diag events and the log"
    ]
    row = dict(render.status_rows(status))["gate link"]
    assert "alarms raised tamper 1" in row and "repeats tamper 598" in row


def test_rejected_hq_messages_are_a_problem_unless_only_stale() -> None:
    def problems(rejected: dict[str, int]) -> list[str]:
        status = {
            "daemon": {"running": True},
            "database": {"schema_version": 5, "schema_latest": 5},
            "sync": {"enabled": True, "link": {"online": True, "rejected": rejected}},
            "disk": {"free_bytes": 10**9, "free_pct": 50.0},
        }
        return [p for p in commands.assess(status)[1] if p.startswith("HQ link")]

    assert problems({"stale": 4}) == []
    assert problems({"bad_sig": 17_000, "not_json": 307, "stale": 1}) == [
        "HQ link: 17307 messages rejected since start (bad_sig 17000, not_json 307): forged or "
        "broken messages reach this terminal"
    ]
    assert (
        render.rejected_text({"not_json": 307, "bad_sig": 17_000}) == "bad_sig 17000, not_json 307"
    )


def test_identity_warns_about_an_open_key_file(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = tmp_path / "sync-ed25519.key"
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o644)
    found = facts.identity("t1", "s1", path)
    assert found["level"] is Level.DEGRADED and "chmod 600" in found["note"]
    assert found["key_id"].startswith("t-") and len(found["public_key"]) == 44


def test_log_redaction_without_database_access_says_so(tmp_path: Path) -> None:
    text, done = bundle.redact_log("张伟 36010020260000000001\n", None)
    assert "36010020260000000001" not in text and not done.names_checked
    text, done = bundle.redact_log("张伟 36010020260000000001\n", lambda c: {"张伟"} & c)
    assert text == "张* 3601************0001\n" and done.names_checked


def test_json_log_lines_are_redacted_value_by_value() -> None:
    line = json.dumps({"message": "tap by 张伟", "card": "3601 0020 2600 0000 0001", "n": 12})
    text, done = bundle.redact_log(
        line + "\nnot json １３８００１３８０００\n", lambda c: {"张伟"} & c
    )
    first, second = text.splitlines()
    assert json.loads(first) == {"message": "tap by 张*", "card": "3601************0001", "n": 12}
    assert second == "not json *******8000"
    assert (done.lines, done.json_lines, done.names_masked) == (2, 1, 1)


def test_add_diag_commands_fits_the_ykt_parser() -> None:
    # The shape of terminal.cli.build_parser: sub-commands that set a `handler`.
    parser = argparse.ArgumentParser(prog="ykt")
    add_diag_commands(parser.add_subparsers(dest="command", required=True))
    for argv in (
        ["diag", "status", "--json"],
        ["diag", "gate", "test", "--seconds", "2"],
        ["diag", "db", "check", "--config", "x.toml"],
        ["diag", "sync", "resync"],
        ["diag", "watch", "--count", "2"],
        ["diag", "bundle", "--log", "ykt.log"],
    ):
        args = parser.parse_args(argv)
        assert callable(args.handler)
    with pytest.raises(SystemExit):
        parser.parse_args(["diag", "sync", "sideways"])


def test_a_quarantined_database_degrades_the_status(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "terminal.db")
    store.close()
    (tmp_path / "terminal.db.corrupt-20261122T010203").write_bytes(b"garbage")
    with facts.Database(tmp_path / "terminal.db") as db:
        files = db.files()
    assert files["quarantined"] == ["terminal.db.corrupt-20261122T010203"]
    level, problems = commands.assess({"daemon": {"running": True}, "database": files})
    assert level == "degraded"
    assert any("quarantined" in p and "new journal epoch" in p for p in problems)


def test_status_is_store_failed_while_taps_are_refused_and_clears_after(tmp_path: Path) -> None:
    config = config_module.parse(
        {
            "terminal": {"id": "diag-gate-01", "site": "demo-centre", "state_dir": str(tmp_path)},
            "door": {"id": "east-gate", "direction": "in"},
            "reader": {"driver": "sim"},
            "gate": {"driver": "sim"},
        }
    )
    store = Store.open(config.database_path)
    live = SimpleNamespace(
        daemon=lambda: {"running": True},
        devices=lambda: {},
        app=SimpleNamespace(store=store, pos_flow=None),
    )
    diag = commands.Commands(config, live=live)  # type: ignore[arg-type]
    tap = TransactionDraft(
        "door", "2026-11-23T09:00:00Z", 0, "card", "deny", Reason.CARD_UNKNOWN, 0, card="x" * 400
    )
    try:
        store.commit(tap)
        assert diag.status()["mode"] == "normal"
        with store.read() as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
        refused = 0
        while refused < 3:
            try:
                store.commit(tap)
            except StoreError:
                refused += 1
        status = diag.status()
        assert status["mode"] == "store_failed" and status["level"] is Level.FAILED
        failing = status["database"]["store_failed"]
        assert failing["refused"] == 3 and "full" in failing["error"] and failing["last_at"]
        assert status["problems"][0].startswith("store: 3 taps refused since ")
        assert "database or disk is full" in status["problems"][0]
        with store.read() as conn:
            conn.execute(f"PRAGMA max_page_count = {pages * 100}")
        store.commit(tap)
        status = diag.status()
        assert status["mode"] == "normal" and "store_failed" not in status["database"]
        assert not any(p.startswith("store:") for p in status["problems"])
    finally:
        store.close()


def test_status_carries_the_serial_boards_link_counters(tmp_path: Path) -> None:
    config = config_module.parse(
        {
            "terminal": {"id": "diag-gate-01", "site": "demo-centre", "state_dir": str(tmp_path)},
            "door": {"id": "east-gate", "direction": "in"},
            "reader": {"driver": "sim"},
            "gate": {"driver": "sim"},
        }
    )
    counters = {
        "bad_frames": 926_444,
        "bad_frames_recent": 900,
        "recent_s": 300,
        "bad_frame_reasons": {"bad_crc": 926_444},
        "alarms": {"raised": {}, "repeats": {}, "flooded": {}, "flooding": False},
    }
    store = Store.open(config.database_path)
    live = SimpleNamespace(
        daemon=lambda: {"running": True},
        devices=lambda: {"gate": {"ok": True, "state": "ok", "detail": ""}},
        app=SimpleNamespace(
            store=store, pos_flow=None, gate=SimpleNamespace(link_counters=lambda: counters)
        ),
    )
    try:
        status = commands.Commands(config, live=live).status()  # type: ignore[arg-type]
    finally:
        store.close()
    assert status["gate_link"] == counters
    assert status["level"] is Level.DEGRADED
    assert any(p.startswith("gate link: 900 bad frames") for p in status["problems"])


def test_the_sync_row_says_online_when_the_link_is_connected() -> None:
    for connected, word in ((True, "link online"), (False, "link offline")):
        status = {"sync": {"enabled": True, "link": {"connected": connected, "rejected": {}}}}
        assert word in dict(render.status_rows(status))["sync"]


def test_with_diag_disabled_the_daemon_is_unknown_not_stopped() -> None:
    base = {
        "database": {"schema_version": 5, "schema_latest": 5},
        "disk": {"free_bytes": 10**9, "free_pct": 50.0},
    }
    unknown = {"running": None, "unknown": "diag is disabled in the config"}
    level, found = commands.assess(base | {"daemon": unknown})
    assert level is Level.DEGRADED and found == ["daemon: diag is disabled in the config"]
    assert "unknown: diag is disabled" in str(dict(render.status_rows(base | {"daemon": unknown})))
    level, found = commands.assess(base | {"daemon": {"running": False}})
    assert level is Level.FAILED and found == ["the daemon is not running: no taps are served"]


def test_no_answer_from_a_disabled_diag_is_not_taken_for_a_stopped_daemon() -> None:
    base = {
        "terminal": {"id": "gate-01", "site": "demo"},
        "reader": {"driver": "sim"},
        "door": {"id": "east-gate"},
        "gate": {"driver": "sim"},
    }
    assert commands._no_daemon(config_module.parse(base)) == {"running": False}
    off = config_module.parse(base | {"diag": {"enabled": False}})
    assert commands._no_daemon(off)["running"] is None
