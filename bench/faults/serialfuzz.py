"""Garbage on the serial line from the turnstile board's side, against the running daemon.

The simulated board (`drivers/turnstile/simboard.py`) serves the board protocol on a pty in this
process; the real daemon drives it as a door terminal with `[gate] driver = "serial"`. While door
taps are fed on the daemon's stdin, the board's side of the line also carries, between its own
frames: random bytes, frames with a broken CRC, oversized frames and runs with no end, truncated
frames, floods of STX, stray escapes, frames of unknown commands (valid CRC), and forged alarm
frames (valid CRC, fresh seqs: the line is not authenticated).

Then, checked:

- the daemon is alive, no traceback, SIGTERM ends it with 0, and its RSS stayed within a bound;
- every tap was decided, and the board opened the gate exactly once for each admission in the
  journal (no opening unasked, none lost to the noise);
- forged alarms became a bounded number of security events (the budget a minute plus a flood
  event), not one per frame;
- `ykt diag status` names the bad frames as a problem;
- the journal passes the kill -9 campaign's checker (chain, seq, outbox, one passage each).
"""

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.faults import kill9
from bench.faults.harness import (
    demo_terminal,
    diag_status,
    log_entries,
    notify_socket,
    problems,
    read_only,
    rss_kb,
    settle,
    start,
    wait_ready,
)
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
    encode,
    encode_frame,
    frame_body,
    wrap_body,
)
from drivers.turnstile.simboard import PassageMode, SimBoard, SimBoardControl
from terminal.demo_site import card_number

SIM_GATE = """[gate]
driver = "sim"
passage = "pass"
passage_delay_seconds = 0.05
"""
RSS_GROWTH_LIMIT_KB = 50_000
ALARM_EVENTS = {kind.value for kind in SecurityKind}


def _serial_gate(link: Path) -> Callable[[str], str]:
    def edit(text: str) -> str:
        if SIM_GATE not in text:
            raise RuntimeError("the harness's door config changed: update SIM_GATE")
        return text.replace(SIM_GATE, f'[gate]\ndriver = "serial"\nport = "{link}"\n')

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
        oversized,
        truncated,
        stx_flood,
        stray_escape,
        unknown_command,
        forged_alarm,
    )


def scenario(
    frames: int = 20_000, taps: int = 200, seed: int = 1, workdir: Path | None = None
) -> dict[str, Any]:
    rng = random.Random(seed)
    noise = Noise(rng)
    result: dict[str, Any] = {"scenario": "serial-garbage", "seed": seed}
    violations: list[str] = []
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
                result |= _fuzz(daemon, control, noise, config, frames, taps, rng, violations)
                daemon.send_signal(signal.SIGTERM)
                result["sigterm_exit"] = daemon.wait(30)
            finally:
                if daemon.poll() is None:
                    daemon.kill()
                    daemon.wait(10)
            openings = len(control.openings())
            kill9._mark(log, 2)
            if settle(config, root / "notify.sock", notify, log) != 0:
                violations.append("the settling run did not exit 0")
        campaign = kill9.Campaign("door")
        kill9.read_log(log, campaign)
        kill9.check(state / "terminal.db", campaign)
        violations += campaign.violations
        with closing(read_only(state / "terminal.db")) as conn:
            admissions = conn.execute(
                "SELECT count(*) FROM journal WHERE kind = 'door' AND decision = 'allow'"
            ).fetchone()[0]
            events = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type"))
        decided = sum(
            1
            for e in log_entries(log)
            if str(e.get("message", "")).startswith(("tap allowed", "tap denied"))
        )
        result |= {
            "taps_fed": taps,
            "taps_decided": decided,
            "admissions": admissions,
            "gate_openings": openings,
            "security_events": events,
            "journal": campaign.journal,
        }
        result["alarm_events"] = sum(n for k, n in events.items() if k in ALARM_EVENTS)
        violations += verdict(result)
        if "Traceback" in log.read_text(encoding="utf-8", errors="replace"):
            violations.append("a traceback in the daemon's output")
    result["violations"] = violations
    return result


def verdict(result: dict[str, Any]) -> list[str]:
    """What the measurements say went wrong."""
    found = []
    # The budget a minute, and one flood event a minute at most, over the minutes begun.
    bound = (BUDGET + 1) * (int(result.get("seconds", 0) / BUDGET_PER) + 1)
    if result["alarm_events"] > bound:
        found.append(f"{result['alarm_events']} security events from forged alarms (> {bound})")
    if result["gate_openings"] != result["admissions"]:
        found.append(
            f"the board opened {result['gate_openings']} times for {result['admissions']} "
            "admissions"
        )
    if result["taps_decided"] != result["taps_fed"]:
        found.append(f"{result['taps_decided']} of {result['taps_fed']} taps decided")
    if result.get("sigterm_exit") != 0:
        found.append(f"SIGTERM: exit {result.get('sigterm_exit')}")
    return found


def _fuzz(
    daemon: Any,
    control: SimBoardControl,
    noise: Noise,
    config: Path,
    frames: int,
    taps: int,
    rng: random.Random,
    violations: list[str],
) -> dict[str, Any]:
    rss = [rss_kb(daemon.pid)]
    started = time.monotonic()
    every = max(1, frames // taps)
    fed = 0
    for n in range(frames):
        control.inject(noise.next())
        if n % every == 0 and fed < taps:
            # Mostly cards that pass, some refused: the gate must open for exactly the first.
            card = card_number(rng.choice((1, 1, 2, 2, 3, 4, 5, 6)))
            daemon.stdin.write(f"tap {card} seq=1\n".encode())
            daemon.stdin.flush()
            fed += 1
            time.sleep(0.15)  # a tap, its opening and its passage take this long at the gate
            rss.append(rss_kb(daemon.pid))
    for _ in range(taps - fed):
        daemon.stdin.write(f"tap {card_number(1)} seq=1\nwait 0.15\n".encode())
    daemon.stdin.flush()
    deadline = time.monotonic() + 60
    while not control.noise.empty() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # the last tap's passage and the counters settle
    rss.append(rss_kb(daemon.pid))
    status = diag_status(config)
    link = status.get("gate_link") or {}
    if daemon.poll() is not None:
        violations.append(f"the daemon died: exit {daemon.returncode}")
    if max(rss) - rss[0] > RSS_GROWTH_LIMIT_KB:
        violations.append(f"RSS grew from {rss[0]} kB to {max(rss)} kB")
    if "bad frames from the board" not in problems(status):
        violations.append(f"diag status does not name the bad frames: {problems(status)}")
    return {
        "frames_injected": frames,
        "frames_by_kind": dict(sorted(noise.frames.items())),
        "bytes_injected": noise.size,
        "bytes_on_the_line": control.noise_written,
        "bytes_dropped_line_full": control.noise_dropped,
        "seconds": round(time.monotonic() - started, 1),
        "rss_kb": {"start": rss[0], "max": max(rss), "end": rss[-1]},
        "bad_frames_counted": link.get("bad_frames"),
        "bad_frame_reasons": link.get("bad_frame_reasons"),
        "alarms": link.get("alarms"),
        "diag_problems": problems(status),
    }


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faults serial-garbage", description=__doc__
    )
    parser.add_argument("--frames", type=int, default=20_000, help="noise frames injected")
    parser.add_argument("--taps", type=int, default=200, help="door taps fed meanwhile")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.frames < 1 or not 1 <= args.taps <= args.frames:
        parser.error("--taps must be between 1 and --frames")
    result = scenario(args.frames, args.taps, args.seed)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
