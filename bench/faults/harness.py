"""What every fault scenario needs: the real daemon as a subprocess on simulated devices, its
READY=1, its JSON log, a read-only look at its database and `ykt diag status` against it."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from terminal.store import Store  # noqa: E402
from tests.fixtures import seed  # noqa: E402

READY_TIMEOUT_S = 30.0

_TERMINAL = """
[terminal]
id = "fault-{kind}-01"
site = "demo-centre"
state_dir = "{state}"
[diag]
socket = "{state}/diag.sock"
[log]
level = "info"
format = "json"
[reader]
driver = "sim"
script = "-"
"""

_DEVICES = {
    "door": """
[door]
id = "east-gate"
direction = "in"
open_seconds = 1
[gate]
driver = "sim"
passage = "pass"
passage_delay_seconds = 0.05
""",
    "pos": """
[pos]
merchant = "shop-1"
service = "shop"
# Every tap a payment: the duplicate-tap prompt would hold most of the stream.
duplicate_window_seconds = 0
[keypad]
driver = "sim"
[display]
driver = "sim"
""",
}


def config_text(kind: str, state: Path) -> str:
    return _TERMINAL.format(kind=kind, state=state) + _DEVICES[kind]


def demo_terminal(
    root: Path, kind: str, edit: Callable[[str], str] = lambda text: text
) -> tuple[Path, Path]:
    """A state directory holding the seeded demo site, and a config for it: (state, config)."""
    state = root / "state"
    store = Store.open(state / "terminal.db")
    seed(store)
    store.close()
    config = root / f"{kind}.toml"
    config.write_text(edit(config_text(kind, state)))
    return state, config


def wait_ready(notify: socket.socket, process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if process.poll() is not None:
            raise RuntimeError(f"the daemon exited {process.returncode} before READY=1")
        try:
            if notify.recv(4096).startswith(b"READY=1"):
                return time.monotonic() - started
        except TimeoutError:
            continue
    raise RuntimeError("no READY=1 within the start-up budget")


def start(
    config: Path, notify_path: Path, log: Path, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = os.environ | {"NOTIFY_SOCKET": str(notify_path), "PYTHONPATH": str(ROOT)}
    env |= dict(extra_env or {})
    # No watchdog: systemd's restart is what a campaign's loop stands for.
    env.pop("WATCHDOG_USEC", None)
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "terminal", "run", "--config", str(config)],
            stdin=subprocess.PIPE,
            stdout=sink,
            stderr=sink,
            env=env,
            cwd=config.parent,
        )


@contextmanager
def notify_socket(path: Path) -> Iterator[socket.socket]:
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(path))
    notify.settimeout(0.2)
    try:
        yield notify
    finally:
        notify.close()


def read_only(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)


def log_entries(log: Path) -> Iterator[dict[str, Any]]:
    """The daemon's JSON log lines; anything else (a line a kill cut short) is skipped."""
    for raw in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def diag_status(config: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "terminal", "diag", "status", "--json", "--config", str(config)],
        # Exits non-zero whenever the level is not ok, which is what is asked here.
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        cwd=config.parent,
    )
    try:
        status = json.loads(result.stdout)
    except ValueError:
        return {"unreadable": result.stdout[-500:] + result.stderr[-500:]}
    return status if isinstance(status, dict) else {"unreadable": result.stdout[-500:]}


def problems(status: dict[str, Any]) -> str:
    listed = status.get("problems")
    return " | ".join(str(p) for p in listed) if isinstance(listed, list) else ""


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def rss_kb(pid: int) -> int:
    """Resident memory of a running process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def settle(config: Path, notify_path: Path, notify: socket.socket, log: Path) -> int:
    """A clean start and SIGTERM after a campaign, which settles what it left (an opening whose
    passage was never recorded is journalled ``passage_unknown``); returns the exit code."""
    daemon = start(config, notify_path, log)
    wait_ready(notify, daemon)
    time.sleep(0.5)
    daemon.send_signal(signal.SIGTERM)
    return daemon.wait(30)
