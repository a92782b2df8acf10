"""SerialGate (pyserial) against the simulated board on the far end of a real pty pair."""

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.simboard import Incident, PassageMode, SimBoard, SimBoardControl
from drivers.interfaces import PassageOutcome
from drivers.turnstile.board import SecurityKind, SerialGate, SerialGateSettings
from drivers.turnstile.codec import (
    Alarm,
    Command,
    Direction,
    EventAck,
    GateMode,
    ModeAck,
    ModeRequest,
    OpenRequest,
    OpenResult,
    Passage,
)
from models.errors import DriverError

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

# Fast but realistic: every timer is scaled down so the whole file stays within a few seconds.
ACK_TIMEOUT = 0.15
RETRIES = 2


def settings(port: str) -> SerialGateSettings:
    return SerialGateSettings(
        driver="serial",
        port=port,
        ack_timeout_seconds=ACK_TIMEOUT,
        retries=RETRIES,
        status_interval_seconds=0.1,
        silence_timeout_seconds=0.5,
        passage_grace_seconds=0.2,
        reconnect_max_seconds=0.3,
    )


def eventually(check: Callable[[], bool], within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _ours() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("turnstile-", "sim-turnstile"))}


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    before = _ours()
    yield
    assert eventually(lambda: _ours() <= before, within=2.0), _ours()


@pytest.fixture
def control() -> SimBoardControl:
    return SimBoardControl(passage_delay=0.05, late_by=0.3)


@pytest.fixture
def board(control: SimBoardControl, tmp_path: Path) -> Iterator[SimBoard]:
    # The link stands in for /dev/serial/by-id/...: stable while the pty behind it changes.
    with SimBoard(control, link=tmp_path / "ttyTURNSTILE") as running:
        yield running


@pytest.fixture
def gate(board: SimBoard) -> Iterator[SerialGate]:
    made = SerialGate(settings(board.path))
    try:
        assert eventually(lambda: made.health().ok), made.health()
        yield made
    finally:
        made.close()


def opens(control: SimBoardControl) -> list[OpenRequest]:
    return [m for m in control.received() if isinstance(m, OpenRequest)]


def test_open_then_passage_is_passed(gate: SerialGate, control: SimBoardControl) -> None:
    gate.open("in", 1.0)
    assert gate.wait_passage(1.0) is PassageOutcome.PASSED
    (granted,) = control.openings()
    assert (granted.direction, granted.units) == (Direction.IN, 10)
    # The host acknowledged the passage event, so the board stops repeating it.
    assert eventually(lambda: any(isinstance(m, EventAck) for m in control.received()))
    assert eventually(lambda: (s := gate.last_status()) is not None and s.passages_in == 1)


def test_direction_out_and_either_reach_the_board(
    gate: SerialGate, control: SimBoardControl
) -> None:
    gate.open("out", 0.5)
    assert gate.wait_passage(0.5) is PassageOutcome.PASSED
    gate.open(None, 0.5)
    assert gate.wait_passage(0.5) is PassageOutcome.PASSED
    assert [o.direction for o in control.openings()] == [Direction.OUT, Direction.EITHER]


def test_nobody_passes_is_a_timeout(gate: SerialGate, control: SimBoardControl) -> None:
    control.next_passage(PassageMode.NOBODY)
    gate.open("in", 0.3)
    started = time.monotonic()
    assert gate.wait_passage(0.3) is PassageOutcome.TIMEOUT
    assert 0.3 <= time.monotonic() - started < 1.5
    assert gate.wait_passage(0.1) is PassageOutcome.TIMEOUT  # nothing left open


def test_late_passage_is_a_timeout_and_does_not_count_for_the_next_opening(
    gate: SerialGate, control: SimBoardControl
) -> None:
    control.next_passage(PassageMode.LATE)  # reported 0.3 s after the 0.3 s window
    gate.open("in", 0.3)
    assert gate.wait_passage(0.3) is PassageOutcome.TIMEOUT
    control.next_passage(PassageMode.NOBODY)
    gate.open("in", 0.6)
    assert gate.wait_passage(0.6) is PassageOutcome.TIMEOUT
    first, second = control.openings()
    (late,) = [m for m in control.sent() if isinstance(m, Passage)]
    assert late.opening_seq == first.seq != second.seq
    # It did reach the host during the second window: the host acknowledged it.
    assert eventually(lambda: EventAck(late.seq) in control.received())


def test_no_answer_is_a_driver_error_after_the_documented_retries(
    gate: SerialGate, control: SimBoardControl
) -> None:
    control.silent = True
    started = time.monotonic()
    with pytest.raises(DriverError, match="after 3 attempts"):
        gate.open("in", 1.0)
    elapsed = time.monotonic() - started
    assert (RETRIES + 1) * ACK_TIMEOUT <= elapsed < (RETRIES + 1) * ACK_TIMEOUT + 1.0
    sent = opens(control)
    assert len(sent) == RETRIES + 1
    assert len(set(sent)) == 1  # the same frame (same seq) every time
    assert gate.wait_passage(0.1) is PassageOutcome.TIMEOUT  # a failed open leaves nothing open
    assert eventually(lambda: gate.health().state == "silent")
    control.silent = False
    assert eventually(lambda: gate.health().ok)


def test_garbled_ack_is_retried_without_opening_twice(
    gate: SerialGate, control: SimBoardControl
) -> None:
    control.garble_next(Command.OPEN_ACK)
    gate.open("in", 1.0)
    assert gate.wait_passage(1.0) is PassageOutcome.PASSED
    sent = opens(control)
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert len(control.openings()) == 1
    assert "1 bad frames" in gate.health().detail


def test_garbled_passage_is_repeated_by_the_board_and_counted_once(
    gate: SerialGate, control: SimBoardControl
) -> None:
    control.garble_next(Command.PASSAGE)
    gate.open("in", 1.0)
    assert gate.wait_passage(1.0) is PassageOutcome.PASSED
    first, repeat = [m for m in control.sent() if isinstance(m, Passage)]
    assert first == repeat

    def acks() -> list[EventAck]:
        return [m for m in control.received() if isinstance(m, EventAck)]

    assert eventually(lambda: acks() == [EventAck(first.seq)]), acks()


def test_refused_opening_is_reported_without_retry(
    gate: SerialGate, control: SimBoardControl
) -> None:
    control.next_open_result(OpenResult.REFUSED)
    with pytest.raises(DriverError, match="refused"):
        gate.open("in", 1.0)
    assert len(opens(control)) == 1


@pytest.mark.parametrize(
    ("incident", "command", "kind", "flag"),
    [
        (Incident.DOOR_FORCED, Command.DOOR_FORCED, SecurityKind.DOOR_FORCED, Alarm.FORCED),
        (Incident.HELD_OPEN, Command.HELD_OPEN, SecurityKind.HELD_OPEN, Alarm.HELD_OPEN),
        (Incident.TAMPER, Command.TAMPER, SecurityKind.TAMPER, Alarm.TAMPER),
    ],
    ids=["forced", "held_open", "tamper"],
)
def test_security_events_are_surfaced_once(
    gate: SerialGate,
    control: SimBoardControl,
    incident: Incident,
    command: Command,
    kind: SecurityKind,
    flag: Alarm,
) -> None:
    control.garble_next(command)  # the first copy is lost on the line
    control.happen(incident)
    (event,) = gate.security_events(timeout=2.0)
    assert event.kind is kind
    assert gate.security_events(timeout=0.6) == []  # repeats were deduplicated, then acked
    assert eventually(lambda: (s := gate.last_status()) is not None and flag in s.alarms)
    assert f"alarms: {(flag.name or '').lower()}" in gate.health().detail


def test_a_stream_of_alarm_frames_is_one_event_per_kind_with_the_repeats_counted(
    gate: SerialGate, control: SimBoardControl
) -> None:
    # Each a new board event (its own seq), as a spoofer on the line or a chattering sensor
    # sends them: the board's own repeats are not what is folded here.
    for _ in range(40):
        control.happen(Incident.TAMPER)
        control.happen(Incident.DOOR_FORCED)
    assert eventually(lambda: gate.link_counters()["alarms"]["repeats"].get("tamper") == 39)
    assert eventually(lambda: gate.link_counters()["alarms"]["repeats"].get("door_forced") == 39)
    kinds = sorted(e.kind for e in gate.security_events(timeout=0.5))
    assert kinds == [SecurityKind.DOOR_FORCED, SecurityKind.TAMPER]
    assert gate.security_events(timeout=0.3) == []
    assert "repeats" in gate.health().detail


def test_bad_frames_are_counted_in_total_and_recently(
    gate: SerialGate, control: SimBoardControl
) -> None:
    control.garble_next(Command.STATUS_REPLY, count=5)
    assert eventually(lambda: gate.link_counters()["bad_frames"] == 5)
    counters = gate.link_counters()
    assert counters["bad_frames_recent"] == 5
    assert counters["recent_s"] == 300
    assert counters["bad_frame_reasons"] == {"bad_crc": 5}
    assert eventually(lambda: "5 bad frames (5 in the last 5 min)" in gate.health().detail)


def test_board_disappears_and_comes_back(gate: SerialGate, control: SimBoardControl) -> None:
    control.happen(Incident.UNPLUG)
    assert eventually(lambda: not gate.health().ok)
    assert gate.health().state in {"disconnected", "unreachable"}
    with pytest.raises(DriverError):
        gate.open("in", 1.0)
    assert eventually(lambda: gate.health().state == "unreachable")
    control.happen(Incident.REPLUG)
    assert eventually(lambda: gate.health().ok), gate.health()
    gate.open("in", 1.0)
    assert gate.wait_passage(1.0) is PassageOutcome.PASSED


def test_unplugged_during_the_opening_is_a_driver_error(
    gate: SerialGate, control: SimBoardControl
) -> None:
    control.next_passage(PassageMode.NOBODY)
    gate.open("in", 0.5)
    control.happen(Incident.UNPLUG)
    with pytest.raises(DriverError, match="passage unknown"):
        gate.wait_passage(0.5)


def test_gate_starts_before_the_board_is_plugged(tmp_path: Path) -> None:
    link = tmp_path / "ttyLATE"
    gate = SerialGate(settings(str(link)))
    board = SimBoard(link=link)
    try:
        assert eventually(lambda: gate.health().state == "unreachable")
        board.start()
        assert eventually(lambda: gate.health().ok)
    finally:
        gate.close()
        board.close()
    assert gate.health().state == "closed"
    with pytest.raises(DriverError, match="closed"):
        gate.open("in", 1.0)


def test_simulated_board_runs_as_a_command(tmp_path: Path) -> None:
    link = tmp_path / "ttyCLI"
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.simboard", "--pty", "--link", str(link)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().strip() == str(link)
        gate = SerialGate(settings(str(link)))
        try:
            assert eventually(lambda: gate.health().ok)
            gate.open("in", 1.0)  # --delay defaults to 0.5 s
            assert gate.wait_passage(1.0) is PassageOutcome.PASSED
            process.stdin.write("tamper\n")
            process.stdin.flush()
            assert [e.kind for e in gate.security_events(timeout=2.0)] == [SecurityKind.TAMPER]
        finally:
            gate.close()
        process.stdin.write("quit\n")
        process.stdin.flush()
        assert process.wait(timeout=5) == 0
        assert not link.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


# -- modes ---------------------------------------------------------------------------------------


def modes_sent(control: SimBoardControl) -> list[ModeRequest]:
    return [m for m in control.received() if isinstance(m, ModeRequest)]


def confirmed(gate: SerialGate, mode: str) -> bool:
    detail = gate.health().detail
    return f"mode {mode}" in detail and "not confirmed" not in detail


def test_free_mode_sends_no_open_and_reports_free_passages(
    gate: SerialGate, control: SimBoardControl, board: SimBoard
) -> None:
    gate.set_mode("free")
    assert board.gate_mode is GateMode.FREE
    (applied,) = control.modes()
    assert gate.health().ok and confirmed(gate, "free")
    started = time.monotonic()
    gate.open("in", 1.0)
    assert gate.wait_passage(1.0) is PassageOutcome.TIMEOUT  # no opening to wait for
    assert time.monotonic() - started < 0.5
    assert opens(control) == []
    control.happen(Incident.WALK_OUT)
    assert eventually(lambda: any(isinstance(m, Passage) for m in control.sent()))
    (passage,) = {m for m in control.sent() if isinstance(m, Passage)}
    assert (passage.direction, passage.opening_seq) == (Direction.OUT, 0)
    assert eventually(lambda: EventAck(passage.seq) in control.received())
    assert eventually(lambda: (s := gate.last_status()) is not None and s.passages_out == 1)
    gate.set_mode("normal")
    gate.open("in", 1.0)
    assert gate.wait_passage(1.0) is PassageOutcome.PASSED
    assert [m.mode for m in control.modes()] == [GateMode.FREE, GateMode.NORMAL]
    assert applied.seq != control.modes()[1].seq


def test_locked_mode_refuses_open_until_back_to_normal(
    gate: SerialGate, control: SimBoardControl, board: SimBoard
) -> None:
    gate.set_mode("locked")
    assert board.gate_mode is GateMode.LOCKED
    with pytest.raises(DriverError, match="refused to open"):
        gate.open("in", 1.0)
    assert len(opens(control)) == 1  # a refusal is not retried
    assert gate.wait_passage(0.1) is PassageOutcome.TIMEOUT
    control.happen(Incident.WALK_IN)  # against a locked arm: no passage
    gate.set_mode("normal")
    assert board.gate_mode is GateMode.NORMAL
    gate.open("in", 1.0)
    assert gate.wait_passage(1.0) is PassageOutcome.PASSED
    assert [m.opening_seq for m in control.sent() if isinstance(m, Passage)] == [
        opens(control)[-1].seq
    ]


def test_lost_mode_ack_is_retried_and_applied_once(
    gate: SerialGate, control: SimBoardControl
) -> None:
    control.garble_next(Command.MODE_ACK)
    gate.set_mode("locked")
    first, repeat = modes_sent(control)
    assert first == repeat  # the same frame, same seq
    assert control.modes() == [first]
    assert [m for m in control.sent() if isinstance(m, ModeAck)] == [ModeAck(first.seq)] * 2


def test_free_is_refused_while_tamper_is_active(
    gate: SerialGate, control: SimBoardControl, board: SimBoard
) -> None:
    control.happen(Incident.TAMPER)
    assert [e.kind for e in gate.security_events(timeout=2.0)] == [SecurityKind.TAMPER]
    with pytest.raises(DriverError, match="refused free mode"):
        gate.set_mode("free")
    assert len(modes_sent(control)) == 1  # a refusal is not retried
    assert board.gate_mode is GateMode.NORMAL
    assert "mode" not in gate.health().detail  # the refused mode is not kept
    gate.set_mode("locked")
    assert board.gate_mode is GateMode.LOCKED


def test_unknown_mode_is_refused_before_anything_is_sent(
    gate: SerialGate, control: SimBoardControl
) -> None:
    with pytest.raises(ValueError, match="'normal', 'free' or 'locked'"):
        gate.set_mode("evacuate")
    assert modes_sent(control) == []


@pytest.mark.parametrize(
    "incidents",
    [(Incident.REBOOT,), (Incident.UNPLUG, Incident.REPLUG)],
    ids=["board-reboots", "adapter-replugged"],
)
def test_mode_is_sent_again_after_the_link_is_reopened(
    gate: SerialGate,
    control: SimBoardControl,
    board: SimBoard,
    incidents: tuple[Incident, ...],
) -> None:
    gate.set_mode("free")
    (before,) = control.modes()
    for incident in incidents:
        control.happen(incident)
        if incident is Incident.UNPLUG:
            assert eventually(lambda: not gate.health().ok)
    assert eventually(lambda: len(control.modes()) == 2), control.modes()
    again = control.modes()[1]
    assert again.mode is GateMode.FREE and again.seq != before.seq
    assert board.gate_mode is GateMode.FREE
    assert eventually(lambda: confirmed(gate, "free")), gate.health()
    gate.open("in", 1.0)
    assert opens(control) == []


def test_mode_not_acknowledged_is_sent_when_the_board_answers_again(
    gate: SerialGate, control: SimBoardControl, board: SimBoard
) -> None:
    control.silent = True
    with pytest.raises(DriverError, match="did not acknowledge MODE after 3 attempts"):
        gate.set_mode("locked")
    assert len(set(modes_sent(control))) == 1
    assert eventually(lambda: gate.health().state == "silent")
    control.silent = False
    assert eventually(lambda: board.gate_mode is GateMode.LOCKED)
    assert eventually(lambda: confirmed(gate, "locked")), gate.health()
    with pytest.raises(DriverError, match="refused"):
        gate.open("in", 1.0)
