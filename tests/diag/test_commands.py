"""Every ``ykt diag`` command against a real daemon, human and ``--json``, with its exit code."""

import base64
import json
import time
from pathlib import Path

import pytest
import segno
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)
from rich.cells import cell_len

from sync.keys import load_or_create
from sync.settings import SyncSection, signing_key_file
from terminal.diag.live import GATE_TESTS_MAX
from terminal.diag.protocol import Exit
from terminal.flows.door import MODE_STATE
from tests.diag.conftest import DiagDaemon, diag_process, run_diag, run_json
from tests.fixtures import card_number

pytestmark = pytest.mark.integration

LOST = card_number(5)
LEADER = card_number(1)


@pytest.fixture(scope="module")
def tapped(door: DiagDaemon) -> DiagDaemon:
    """The door after an admitted leader and a denied lost card (one security event)."""
    before = door.journal_count()
    door.send(f"tap {LEADER} seq=1")
    door.send(f"tap {LOST} seq=1")
    door.wait_journal(before + 3)  # door + passage for the leader, the denial
    return door


def assert_fits(text: str) -> None:
    widest = max((cell_len(line.rstrip()) for line in text.splitlines()), default=0)
    assert widest <= 80, text


def both(door: DiagDaemon, *argv: str) -> tuple[int, str, int, dict[str, object]]:
    code, out, err = run_diag(*argv, "--socket", str(door.socket))
    assert "Traceback" not in err, err
    assert_fits(out)
    json_code, result = run_json(*argv, "--socket", str(door.socket))
    assert json_code == code, (out, result)
    return code, out, json_code, result


CASES = [
    (("status",), {Exit.OK, Exit.DEGRADED}, "daemon"),
    (("readers",), {Exit.OK}, "simulated reader"),
    (("camera",), {Exit.NOT_AVAILABLE}, "faces are not enabled"),
    (("face",), {Exit.NOT_AVAILABLE}, "faces are not enabled"),
    (("tx",), {Exit.OK}, "card_lost"),
    (("tx", "--card", LOST[-4:]), {Exit.OK}, "3601************0005"),
    (("events",), {Exit.OK}, "lost_card_used"),
    (("sync",), {Exit.OK}, "not enabled"),
    (("sync", "resync"), {Exit.NOT_AVAILABLE}, "sync is not enabled on this terminal"),
    (("sync", "upload"), {Exit.NOT_AVAILABLE}, "sync is not enabled on this terminal"),
    (("db", "check"), {Exit.OK}, "chain ok"),
    (("config",), {Exit.OK}, "door.id"),
    (("identity",), {Exit.NOT_AVAILABLE}, "no terminal key yet"),
]


@pytest.mark.parametrize(("argv", "codes", "shown"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_command_in_both_forms(
    tapped: DiagDaemon, argv: tuple[str, ...], codes: set[Exit], shown: str
) -> None:
    code, out, _, result = both(tapped, *argv)
    assert code in codes
    assert shown in out
    assert result["source"] == "daemon"
    assert LEADER not in out + json.dumps(result)
    assert LOST not in out + json.dumps(result)


def test_status_reports_what_a_technician_needs(tapped: DiagDaemon) -> None:
    code, status = run_json("status", "--socket", str(tapped.socket))
    assert status["daemon"]["running"] is True
    assert status["daemon"]["uptime_s"] >= 0
    assert status["mode"] == "normal"
    assert status["devices"]["reader"]["ok"] and status["devices"]["gate"]["ok"]
    assert status["database"]["counts"]["journal"] >= 3
    assert status["sync"]["outbox"]["tx"] >= 3
    assert status["sync"]["outbox"]["oldest_age_s"] is not None
    assert status["clock"]["timezone"] == "Asia/Shanghai"
    assert status["clock"]["ntp_synchronized"] in (True, False, None)
    assert status["disk"]["free_bytes"] > 0
    # The exit code follows the level, so a script needs only `$?`.
    assert code == {"ok": 0, "degraded": 3}[status["level"]]


def test_tx_search_masks_and_filters(tapped: DiagDaemon) -> None:
    _, found = run_json("tx", "--card", LOST, "--socket", str(tapped.socket))
    rows = found["transactions"]
    assert rows and {r["card"] for r in rows} == {"3601************0005"}
    assert {r["reason"] for r in rows} == {"card_lost"}
    _, none = run_json("tx", "--reason", "no_such_reason", "--socket", str(tapped.socket))
    assert none["transactions"] == []


def test_card_dry_run_decides_without_committing(tapped: DiagDaemon) -> None:
    for form in ((), ("--json",)):
        before = tapped.journal_count()
        events_before = len(tapped.call("events", limit=1000)["events"])
        client = diag_process("card", "--timeout", "15", "--socket", str(tapped.socket), *form)
        deadline = time.monotonic() + 15
        while not tapped.call("status")["daemon"]["card_dry_run_waiting"]:
            assert time.monotonic() < deadline, "the dry run never armed"
            time.sleep(0.05)
        tapped.send(f"tap {LOST} seq=1")
        out, err = client.communicate(timeout=30)
        assert client.returncode == 0, err
        assert LOST not in out
        if form:
            result = json.loads(out)
            assert result["committed"] is False
            assert result["read"]["number"] == "3601************0005"
            assert result["read"]["genuine"] == "genuine"
            assert result["registry"]["card_status"] == "lost"
            assert result["registry"]["holder"] == "陈*"
            assert result["decision"]["reason"] == "card_lost"
            assert result["decision"]["alert"] == "lost_card_used"
        else:
            assert "would get DENY card_lost" in out
            assert "Nothing was recorded" in out
        # Nothing journalled, no security event: the flow never saw the tap.
        time.sleep(0.3)
        assert tapped.journal_count() == before
        assert len(tapped.call("events", limit=1000)["events"]) == events_before
    # The flow is untouched: the next tap is decided and journalled as usual.
    before = tapped.journal_count()
    tapped.send(f"tap {LEADER} seq=1")
    tapped.wait_journal(before + 2)


def test_card_by_number_is_judged_without_a_tap_and_says_why(tapped: DiagDaemon) -> None:
    before = tapped.journal_count()
    code, result = run_json("card", "--number", LOST, "--socket", str(tapped.socket))
    assert code == Exit.OK
    assert result["committed"] is False and result["read"]["genuine"] == "unchecked"
    assert "no chip was read" in result["note"]
    assert (result["decision"]["reason"], result["decision"]["alert"]) == (
        "card_lost",
        "lost_card_used",
    )
    assert result["would_record"] == [
        {"kind": "door", "decision": "deny", "reason": "card_lost", "credential": "card"}
    ]
    assert result["would_raise"] == ["lost_card_used"]
    why = "\n".join(result["why"])
    assert "card status lost" in why and "door east-gate mode normal" in why
    assert LOST not in json.dumps(result)  # masked, even in the explanation
    # Admitted: the groups tried at this door and whether their windows are open now.
    _, leader = run_json("card", "--number", LEADER, "--socket", str(tapped.socket))
    assert leader["decision"]["allowed"] is True and leader["gate"] == "open"
    assert any(fact.startswith("group leaders") and "open at" in fact for fact in leader["why"])
    code, out, _ = run_diag("card", "--number", LEADER, "--socket", str(tapped.socket))
    assert code == Exit.OK and "would get ALLOW allowed" in out and "why:" in out
    assert tapped.journal_count() == before
    code, _, err = run_diag("card", "--number", "12-34", "--socket", str(tapped.socket))
    assert code == Exit.USAGE and "number" in err


def test_card_times_out_with_its_own_exit_code(tapped: DiagDaemon) -> None:
    code, _, err = run_diag("card", "--timeout", "1", "--socket", str(tapped.socket))
    assert code == Exit.TIMEOUT
    assert "no card was tapped" in err


def test_gate_test_pulses_and_is_journalled_as_an_event(tapped: DiagDaemon) -> None:
    code, out, _, result = both(tapped, "gate", "test", "--seconds", "0.5")
    assert code == Exit.OK
    assert "gate test" in out
    assert result["opened"] is True and result["passage"] == "passed"
    assert result["sensors"] is None and "reports no sensors" in str(result["sensors_note"])
    events = tapped.call("events", type="maintenance_open")["events"]
    assert len(events) >= 2 and events[0]["detail"] == {"source": "diag", "uid": 0}


def test_identity_shows_the_public_key(tapped: DiagDaemon) -> None:
    # Where the HQ link creates its key (sync.keys.load_or_create at the configured path): the
    # key HQ must enrol is the one diag shows.
    path = signing_key_file(SyncSection(), tapped.state)
    key = load_or_create(path)
    try:
        code, out, _, result = both(tapped, "identity")
        expected = base64.b64encode(
            key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        ).decode()
        assert code == Exit.OK
        assert result["public_key"] == expected and result["terminal_id"] == "diag-gate-01"
        assert expected in out
        assert "PRIVATE" not in out + json.dumps(result)
    finally:
        path.unlink()


def test_pos_dry_run_and_gate_test_on_a_pos(shop: DiagDaemon) -> None:
    client = diag_process(
        "card", "--amount", "1500", "--timeout", "15", "--json", "--socket", str(shop.socket)
    )
    deadline = time.monotonic() + 15
    while not shop.call("status")["daemon"]["card_dry_run_waiting"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    shop.send(f"tap {card_number(2)} seq=1")
    out, err = client.communicate(timeout=30)
    assert client.returncode == 0, err
    result = json.loads(out)
    assert result["where"] == {"merchant": "shop-1", "service": "shop"}
    assert result["committed"] is False and result["decision"]["reason"]
    assert shop.journal_count() == 0
    code, _, err = run_diag("gate", "test", "--socket", str(shop.socket))
    assert code == Exit.NOT_AVAILABLE and "no gate" in err
    _, status = run_json("status", "--socket", str(shop.socket))
    assert status["role"] == {"kind": "pos", "merchant": "shop-1", "service": "shop"}
    assert "gate" not in status["devices"]


def test_entry_point_runs_as_a_module(tapped: DiagDaemon) -> None:
    client = diag_process("status", "--json", "--socket", str(tapped.socket))
    out, err = client.communicate(timeout=30)
    assert client.returncode in (Exit.OK, Exit.DEGRADED), err
    assert json.loads(out)["terminal_id"] == "diag-gate-01"


def test_gate_test_refuses_a_lockdown_and_a_loop(tmp_path: Path) -> None:
    locked = DiagDaemon(tmp_path / "locked", prepare=lambda s: s.put_state(MODE_STATE, "locked"))
    try:
        code, _, err = run_diag("gate", "test", "--socket", str(locked.socket))
        assert code == Exit.DENIED and "lockdown" in err
        assert locked.call("events", type="maintenance_open")["events"] == []
    finally:
        locked.close()
    normal = DiagDaemon(tmp_path / "normal")
    try:
        codes = [
            run_diag("gate", "test", "--seconds", "0.5", "--socket", str(normal.socket))[0]
            for _ in range(GATE_TESTS_MAX + 1)
        ]
        assert codes[:-1] == [Exit.OK] * GATE_TESTS_MAX and codes[-1] != Exit.OK
        events = normal.call("events", type="maintenance_open")["events"]
        assert len(events) == GATE_TESTS_MAX
    finally:
        normal.close()


def test_qr_judges_a_code_from_text_or_a_photo_and_says_when_it_needs_a_reader(
    door: DiagDaemon, tmp_path: Path
) -> None:
    before = door.journal_count()
    code, out, _, result = both(door, "qr", "--text", "YKT1.not-a-code")
    assert code == Exit.OK and result["decision"]["reason"] == "qr_invalid"  # type: ignore[index]
    assert "DENY qr_invalid" in out and "not a v1 code" in out
    segno.make("YKT1.eyJ4IjoxfQ.AAAA", error="m", mode="byte").save(tmp_path / "c.png", scale=5)
    _, result = run_json("qr", "--image", str(tmp_path / "c.png"), "--socket", str(door.socket))
    assert result["decision"]["reason"] == "qr_invalid"
    assert result["code"]["problem"].startswith("signature")
    code, _, err = run_diag(
        "qr", "--image", str(tmp_path / "none.png"), "--socket", str(door.socket)
    )
    assert code == Exit.USAGE and "cannot read image" in err
    code, _, err = run_diag("qr", "--camera", "--socket", str(door.socket))
    assert code == Exit.NOT_AVAILABLE and "no QR reader" in err
    assert door.journal_count() == before  # nothing of it was journalled
