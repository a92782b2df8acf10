"""`ykt run` as the shipped unit runs it (WatchdogSec=15): a PIN prompt nobody answers must not
stop the watchdog pings, or systemd kills the till in front of the customer."""

import itertools
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from terminal.store import Store
from tests.fixtures import card_number, seed

pytestmark = pytest.mark.integration

WATCHDOG_USEC = 15_000_000  # systemd/ykt-terminal.service: WatchdogSec=15
UNANSWERED_SECONDS = 40.0  # longer than the 30 s prompt timeout: the prompt runs out meanwhile
MOST_BETWEEN_PINGS = 7.5  # half of WatchdogSec: what systemd documents as the safe interval

POS = """
[terminal]
id = "wd-shop-01"
site = "demo-centre"
state_dir = "{state}"
[diag]
socket = "{state}/diag.sock"
[log]
level = "info"
format = "text"
[pos]
merchant = "shop-1"
service = "shop"
[reader]
driver = "sim"
script = "-"
[keypad]
driver = "sim"
[display]
driver = "sim"
"""


def journal(db: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in conn.execute("SELECT decision, reason FROM journal ORDER BY seq")]
    finally:
        conn.close()


def test_an_unanswered_pin_prompt_keeps_the_watchdog_fed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = Store.open(state / "terminal.db")
    seed(store)
    store.close()
    config = tmp_path / "shop.toml"
    config.write_text(POS.format(state=state))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(1.0)
    env = os.environ | {
        "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
        "WATCHDOG_USEC": str(WATCHDOG_USEC),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "terminal", "run", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        ready_by = time.monotonic() + 30
        while True:
            assert time.monotonic() < ready_by, "never READY"
            try:
                if notify.recv(4096).decode().startswith("READY=1"):
                    break
            except TimeoutError:
                continue
        assert process.stdin is not None
        # 120.00 at the shop with 张伟's gold card: above his 100.00 password-free limit.
        process.stdin.write(f"amount 12000\ntap {card_number(1)} seq=1\n")
        process.stdin.flush()
        started = time.monotonic()
        pings = [started]
        while (now := time.monotonic()) - started < UNANSWERED_SECONDS:
            try:
                message = notify.recv(4096).decode()
            except TimeoutError:
                continue
            if message == "WATCHDOG=1":
                pings.append(now)
        pings.append(time.monotonic())
        gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
        assert len(pings) > 2 + UNANSWERED_SECONDS / MOST_BETWEEN_PINGS
        assert max(gaps) <= MOST_BETWEEN_PINGS, f"longest silence {max(gaps):.1f} s"
        # The prompt ran out after 30 s and the payment was journalled as cancelled.
        assert journal(state / "terminal.db") == [("deny", "cancelled_by_user")]
        assert process.poll() is None
    finally:
        process.terminate()
        try:
            _, err = process.communicate(timeout=30)
        finally:
            notify.close()
    assert process.returncode == 0, err
