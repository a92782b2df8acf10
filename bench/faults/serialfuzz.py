"""Garbage on the serial line from the turnstile board's side, against the running daemon.

The simulated board (`devtools/simboard.py`) serves the board protocol on a pty in this
process; the real daemon drives it as a door terminal with `[gate] driver = "serial"`. While door
taps are fed on the daemon's stdin (mostly cards that pass, some lost, expired or without
access), the board's side of the line also carries, between its own frames: random bytes, frames
with a broken CRC, frames whose LEN lies (valid CRC), oversized frames and runs with no end,
truncated frames, floods of STX, stray escapes, frames of unknown commands (valid CRC), and
forged alarm frames (valid CRC, fresh seqs: the line is not authenticated). The board writes the
noise only as fast as the daemon reads it, so every injected byte arrives and none of the board's
own frames is lost or cut: what is tested is the daemon's reading, not a line overrun.

Then, checked (`verdict`):

- the daemon is alive, no traceback, SIGTERM ends it with 0, and its RSS stayed within a bound
  (+50 MB or twice the start, whichever is hit first);
- every tap was decided, and the board opened the gate exactly once for each admission in the
  journal, each with its passage confirmed (no opening unasked, none lost to the noise);
- forged alarms became a bounded number of security events and warnings (the budget a minute
  plus a flood event), not one per frame;
- `ykt diag status` names the bad frames as a problem;
- the journal passes the kill -9 campaign's checker (chain, seq, outbox, one passage each).
"""

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.faults import clockjump, kill9
from bench.faults.harness import (
    demo_terminal,
    diag_status,
    log_entries,
    notify_socket,
    problems,
    quantile,
    read_only,
    rss_kb,
    settle,
    start,
    wait_ready,
)
from devtools.simboard import PassageMode, SimBoard, SimBoardControl
from drivers.turnstile.alarms import BUDGET, BUDGET_PER, SecurityKind
from drivers.turnstile.codec import (
    DLE,
    ETX,
    MAX_PAYLOAD,
    STX,
    Command,
    DoorForced,
    Frame,
    HeldOpen,
    Tamper,
    crc16,
    encode,
    encode_frame,
    frame_body,
    wrap_body,
)
from tests.fixtures import card_number

SIM_GATE = """[gate]
driver = "sim"
passage = "pass"
passage_delay_seconds = 0.05
"""
# The documented defaults, spelled out so the campaign does not move when they do.
SERIAL_GATE = """[gate]
driver = "serial"
port = {port}
ack_timeout_seconds = 0.3
retries = 2
silence_timeout_seconds = 3.0
"""
RSS_GROWTH_LIMIT_KB = 50_000
ALARM_EVENTS = {kind.value for kind in SecurityKind}
TAP_GAP_S = 0.15  # a tap, its opening and its passage take about this long at the gate
STALL_S = 30.0  # the daemon reading nothing of the line this long is a finding, not a wait


def _serial_gate(link: Path) -> Callable[[str], str]:
    def edit(text: str) -> str:
        if SIM_GATE not in text:
            raise RuntimeError("the harness's door config changed: update SIM_GATE")
        # A JSON string is a TOML basic string for any path the temporary directory makes.
        return text.replace(SIM_GATE, SERIAL_GATE.format(port=json.dumps(str(link))))

    return edit


@dataclass
class Noise:
    rng: random.Random
    frames: Counter[str] = field(default_factory=Counter)
    size: int = 0  # bytes injected

    def _frame(self) -> Frame:
        command = self.rng.choice(list(Command))
        size = self.rng.randint(0, MAX_PAYLOAD)
        return Frame(int(command), self.rng.randrange(256), self.rng.randbytes(size))

    def next(self) -> bytes:
        kind, raw = self.rng.choice(self._makers)(self)
        self.frames[kind] += 1
        self.size += len(raw)
        return raw

    def random_bytes(self) -> tuple[str, bytes]:
        return "random bytes", self.rng.randbytes(self.rng.randint(1, 512))

    def bad_crc(self) -> tuple[str, bytes]:
        body = bytearray(frame_body(self._frame()))
        body[-self.rng.randint(1, 2)] ^= self.rng.randint(1, 255)
        return "bad CRC", wrap_body(bytes(body))

    def lying_length(self) -> tuple[str, bytes]:
        # The CRC is right: only LEN, the second check, can tell this frame is broken.
        frame = self._frame()
        lie = (len(frame.payload) + self.rng.randint(1, 255)) % 256
        head = bytes((lie, frame.command, frame.seq)) + frame.payload
        return "lying length", wrap_body(head + crc16(head).to_bytes(2, "big"))

    def oversized(self) -> tuple[str, bytes]:
        size = self.rng.randint(MAX_PAYLOAD + 1, 255)
        head = bytes((size, self.rng.randrange(256), self.rng.randrange(256)))
        payload = self.rng.randbytes(size)
        if self.rng.random() < 0.5:
            return "oversized frame", wrap_body(head + payload + b"\0\0")
        # No ETX at all: the receiver must give up on the run, not buffer it for ever.
        endless = bytes(b for b in self.rng.randbytes(4096) if b not in (STX, ETX))
        return "run with no end", bytes((STX,)) + endless

    def truncated(self) -> tuple[str, bytes]:
        whole = encode_frame(self._frame())
        return "truncated frame", whole[: self.rng.randint(1, len(whole) - 1)]

    def stx_flood(self) -> tuple[str, bytes]:
        return "STX flood", bytes((STX,)) * self.rng.randint(2, 300)

    def stray_escape(self) -> tuple[str, bytes]:
        return "stray escape", bytes((STX, 3, DLE, ETX))

    def unknown_command(self) -> tuple[str, bytes]:
        known = {int(c) for c in Command}
        command = self.rng.choice([c for c in range(256) if c not in known])
        frame = Frame(command, self.rng.randrange(256), self.rng.randbytes(self.rng.randint(0, 8)))
        return "unknown command", encode_frame(frame)

    def forged_alarm(self) -> tuple[str, bytes]:
        kind = self.rng.choice((DoorForced, HeldOpen, Tamper))
        return "forged alarm", encode(kind(self.rng.randrange(256)))

    _makers = (
        random_bytes,
        bad_crc,
        lying_length,
        oversized,
        truncated,
        stx_flood,
        stray_escape,
        unknown_command,
        forged_alarm,
    )


def scenario(
    frames: int = 20_000,
    taps: int = 200,
    seed: int = 1,
    workdir: Path | None = None,
    min_bytes: int = 0,
) -> dict[str, Any]:
    """At least ``frames`` noise pieces and ``min_bytes`` bytes, ``taps`` taps among them."""
    rng = random.Random(seed)
    noise = Noise(rng)
    result: dict[str, Any] = {"scenario": "serial-garbage", "seed": seed}
    with tempfile.TemporaryDirectory(prefix="ykt-serialfuzz-", dir=workdir) as scratch:
        root = Path(scratch)
        link = root / "ttyTURNSTILE"
        control = SimBoardControl(PassageMode.PASSES, passage_delay=0.05)
        state, config = demo_terminal(root, "door", edit=_serial_gate(link))
        log = root / "daemon.log"
        with SimBoard(control, link=link), notify_socket(root / "notify.sock") as notify:
            kill9._mark(log, 1)
            daemon = start(config, root / "notify.sock", log)
            try:
                wait_ready(notify, daemon)
                result |= _fuzz(daemon, control, noise, config, log, frames, min_bytes, taps, rng)
                result["daemon_alive"] = daemon.poll() is None
                result["daemon_exit"] = daemon.returncode
                daemon.send_signal(signal.SIGTERM)
                result["sigterm_exit"] = daemon.wait(30)
            finally:
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.wait(10)
            kill9._mark(log, 2)
            result["settle_exit"] = settle(config, root / "notify.sock", notify, log)
            result["gate_openings"] = len(control.openings())
        result |= _afterwards(state / "terminal.db", log)
    result["violations"] += verdict(result)
    return result


def _fuzz(
    daemon: subprocess.Popen[bytes],
    control: SimBoardControl,
    noise: Noise,
    config: Path,
    log: Path,
    frames: int,
    min_bytes: int,
    taps: int,
    rng: random.Random,
) -> dict[str, Any]:
    assert daemon.stdin is not None
    rss = [_rss(daemon)]
    started = time.monotonic()
    per_tap = max(1, frames // taps)
    fed_at: list[float] = []
    stalled = False
    injected = 0
    while (injected < frames or noise.size < min_bytes) and daemon.poll() is None:
        # Only a little noise queued ahead, so the taps meet it all along, not after it.
        if not _line(control, daemon, lambda: control.noise.qsize() <= 2 * per_tap):
            stalled = True
            break
        for _ in range(per_tap):
            control.inject(noise.next())
        injected += per_tap
        if len(fed_at) < taps:
            # Mostly cards that pass, some refused: the gate must open for exactly the first.
            card = card_number(rng.choice((1, 1, 2, 2, 3, 4, 5, 6)))
            try:
                daemon.stdin.write(f"tap {card} seq=1\n".encode())
                daemon.stdin.flush()
            except BrokenPipeError:
                break
            fed_at.append(time.time())
            time.sleep(TAP_GAP_S)
        rss.append(_rss(daemon))

    def on_the_line() -> bool:
        return control.noise_written + control.noise_dropped >= noise.size

    stalled = stalled or not _line(control, daemon, on_the_line)
    seconds = time.monotonic() - started
    decided = _await_decisions(log, len(fed_at), daemon)
    time.sleep(1.0)  # the last tap's passage is journalled
    rss.append(_rss(daemon))
    status = diag_status(config)
    link = status.get("gate_link") or {}
    latency = [
        datetime.fromisoformat(str(entry["ts"])).timestamp() - fed
        for fed, entry in zip(fed_at, decided, strict=False)
        if "ts" in entry
    ]
    return {
        "frames_injected": sum(noise.frames.values()),
        "frames_by_kind": dict(sorted(noise.frames.items())),
        "bytes_injected": noise.size,
        "bytes_on_the_line": control.noise_written,
        "bytes_lost_with_the_pty": control.noise_dropped,
        "line_stalled": stalled,
        "seconds": round(seconds, 1),
        "rss_kb": {"start": rss[0], "max": max(rss), "end": rss[-1]},
        "taps_fed": len(fed_at),
        "taps_asked": taps,
        "taps_decided": len(decided),
        "decision_s": {"p50": quantile(latency, 0.5), "max": quantile(latency, 1.0)},
        "bad_frames_counted": link.get("bad_frames"),
        "bad_frame_reasons": link.get("bad_frame_reasons"),
        "alarms": link.get("alarms"),
        "diag_problems": problems(status),
    }


def _line(
    control: SimBoardControl, daemon: subprocess.Popen[bytes], done: Callable[[], bool]
) -> bool:
    """Wait for ``done``; False if the daemon read nothing of the line for ``STALL_S``."""
    last, since = control.noise_written, time.monotonic()
    while not done() and daemon.poll() is None:
        if control.noise_written != last:
            last, since = control.noise_written, time.monotonic()
        elif time.monotonic() - since > STALL_S:
            return False
        time.sleep(0.01)
    return True  # a dead daemon is a violation of its own


def _rss(daemon: subprocess.Popen[bytes]) -> int:
    try:
        return rss_kb(daemon.pid)
    except OSError:  # reaped already: its death is reported as such
        return 0


def _await_decisions(
    log: Path, expected: int, daemon: subprocess.Popen[bytes]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15.0
    while True:
        # ``tap allowed <reason>``, logged by the door flow after the commit.
        decided = [e for e in log_entries(log) if clockjump._decided(e)]
        if len(decided) >= expected or time.monotonic() > deadline or daemon.poll() is not None:
            return decided
        time.sleep(0.1)


def _afterwards(db: Path, log: Path) -> dict[str, Any]:
    """The journal, the events and the log, once no daemon has them open."""
    campaign = kill9.Campaign("door")
    kill9.read_log(log, campaign)
    kill9.check(db, campaign)
    with closing(read_only(db)) as conn:
        admissions, confirmed = conn.execute(
            "SELECT sum(kind = 'door' AND decision = 'allow'),"
            " sum(kind = 'passage' AND reason = 'passage_confirmed') FROM journal"
        ).fetchone()
        events = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type"))
    messages = [str(e.get("message", "")) for e in log_entries(log)]
    return {
        "admissions": admissions or 0,
        "passages_confirmed": confirmed or 0,
        "security_events": events,
        "alarm_events": sum(n for kind, n in events.items() if kind in ALARM_EVENTS),
        "alarm_warnings": sum(m.startswith(("gate alarm", "turnstile alarm")) for m in messages),
        "journal": campaign.journal,
        "tracebacks": log.read_text(encoding="utf-8", errors="replace").count("Traceback"),
        # The traceback is judged once, below, with the rest.
        "violations": [v for v in campaign.violations if "traceback" not in v],
    }


def verdict(result: dict[str, Any]) -> list[str]:
    """What the measurements say went wrong."""
    found = []
    if not result.get("daemon_alive"):
        found.append(f"the daemon died during the noise: exit {result.get('daemon_exit')}")
    if result.get("tracebacks"):
        found.append(f"{result['tracebacks']} tracebacks in the daemon's output")
    if result.get("sigterm_exit") != 0:
        found.append(f"SIGTERM: exit {result.get('sigterm_exit')}")
    if result.get("settle_exit") != 0:
        found.append(f"the settling run exited {result.get('settle_exit')}")
    if result.get("line_stalled"):
        found.append(f"the daemon read nothing of the line for {STALL_S:.0f}s")
    if result["bytes_on_the_line"] < result["bytes_injected"]:
        found.append(
            f"{result['bytes_injected'] - result['bytes_on_the_line']} injected bytes never "
            "reached the line"
        )
    rss = result["rss_kb"]
    if rss["max"] - rss["start"] > RSS_GROWTH_LIMIT_KB or rss["max"] > 2 * rss["start"]:
        found.append(f"RSS grew from {rss['start']} kB to {rss['max']} kB")
    # The budget a minute and one flood event a minute at most, over the minutes begun.
    bound = (BUDGET + 1) * (int(result["seconds"] / BUDGET_PER) + 1)
    if result["alarm_events"] > bound:
        found.append(f"{result['alarm_events']} security events from forged alarms (> {bound})")
    # Each raised: the gate's warning and the loop's; each incident ended: one more.
    if result["alarm_warnings"] > 3 * bound:
        found.append(f"{result['alarm_warnings']} alarm warnings logged (> {3 * bound})")
    if result["gate_openings"] != result["admissions"]:
        found.append(
            f"the board opened {result['gate_openings']} times for {result['admissions']} "
            "admissions"
        )
    if result["passages_confirmed"] != result["admissions"]:
        found.append(
            f"{result['passages_confirmed']} passages confirmed for {result['admissions']} "
            "admissions"
        )
    if not result["taps_fed"] == result["taps_decided"] == result["taps_asked"]:
        found.append(
            f"{result['taps_decided']} of {result['taps_fed']} taps decided "
            f"({result['taps_asked']} asked)"
        )
    if "bad frames from the board" not in result["diag_problems"]:
        found.append(f"diag status does not name the bad frames: {result['diag_problems']!r}")
    return found


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults serial-garbage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=20_000, help="noise pieces, at least")
    parser.add_argument("--bytes", type=int, default=0, help="noise bytes, at least")
    parser.add_argument("--taps", type=int, default=200, help="door taps, spread over --frames")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.frames < 1 or not 1 <= args.taps <= args.frames:
        parser.error("--taps must be between 1 and --frames")
    result = scenario(args.frames, args.taps, args.seed, min_bytes=args.bytes)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
