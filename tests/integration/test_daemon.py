"""`ykt run` as a real subprocess on simulated hardware: taps, sd_notify, SIGTERM, the journal."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from terminal.store import Store
from terminal.store.schema import quarantined_files
from tests.fixtures import card_number, seed
from tests.unit.test_store_damage import damaged_site, oldest_journal_leaf, overwrite

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

CONFIG = """
[terminal]
id = "it-gate-01"
site = "demo-centre"
state_dir = "{state}"
[diag]
socket = "{state}/diag.sock"
[log]
level = "info"
format = "auto"
[door]
id = "east-gate"
direction = "in"
open_seconds = 3
[reader]
driver = "sim"
script = "-"
[gate]
driver = "sim"
passage = "pass"
passage_delay_seconds = {delay}
"""


class Daemon:
    """``ykt run`` on a seeded site (or on the database ``prepare`` leaves in the state dir)."""

    def __init__(
        self,
        tmp_path: Path,
        delay: float = 0.05,
        *,
        extra: str = "",
        prepare: Callable[[Path], None] | None = None,
    ) -> None:
        self.state = tmp_path / "state"
        if prepare is None:
            store = Store.open(self.state / "terminal.db")
            seed(store)
            store.close()
        else:
            self.state.mkdir()
            prepare(self.state)
        self.config = tmp_path / "gate.toml"
        self.config.write_text(CONFIG.format(state=self.state, delay=delay) + extra)
        self.notify_path = tmp_path / "notify.sock"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(self.notify_path))
        self.notify.settimeout(30)
        env = os.environ | {"NOTIFY_SOCKET": str(self.notify_path), "WATCHDOG_USEC": "400000"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "terminal", "run", "--config", str(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )

    def next_notification(self) -> str:
        return self.notify.recv(4096).decode()

    def wait_for(self, wanted: str) -> list[str]:
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen.append(self.next_notification())
            if seen[-1].startswith(wanted):
                return seen
        raise AssertionError(f"no {wanted} among {seen}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def records(self) -> list[dict[str, object]]:
        store = Store.open(self.state / "terminal.db")
        try:
            assert store.verify_journal() is None
            return store.records()
        finally:
            store.close()

    def wait_records(self, count: int) -> list[dict[str, object]]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            conn_records = self._peek()
            if conn_records >= count:
                return self.records()
            time.sleep(0.05)
        raise AssertionError(f"journal never reached {count} records")

    def _peek(self) -> int:
        conn = sqlite3.connect(f"file:{self.state / 'terminal.db'}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM journal").fetchone()[0])
        finally:
            conn.close()

    def stop(self) -> tuple[int, str, str]:
        self.process.send_signal(signal.SIGTERM)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate(timeout=30)
        self.notify.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path)
    yield running
    running.kill()


def test_taps_are_journalled_and_sigterm_exits_cleanly(daemon: Daemon) -> None:
    daemon.wait_for("READY=1")
    daemon.send(f"tap {card_number(1)} seq=1")
    daemon.send(f"tap {card_number(5)} seq=1")  # lost
    daemon.send("tap 99999999999999999999")
    records = daemon.wait_records(4)
    code, out, err = daemon.stop()
    assert code == 0, err
    assert "Traceback" not in err
    records = daemon.records()
    door = [(r["card"], r["decision"], r["reason"]) for r in records if r["kind"] == "door"]
    assert door == [
        (card_number(1), "allow", "allowed"),
        (card_number(5), "deny", "card_lost"),
        ("99999999999999999999", "deny", "card_unknown"),
    ]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    # stdout is a pipe, so the log is JSON lines; no full card number appears in it.
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert any(entry["message"] == "stopped" for entry in lines)
    assert card_number(1) not in out
    assert any(entry.get("card") == "3601************0001" for entry in lines)


def test_systemd_notifications(daemon: Daemon) -> None:
    seen = daemon.wait_for("READY=1")
    assert seen[-1].startswith("READY=1")
    assert daemon.wait_for("WATCHDOG=1")
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.wait_for("STOPPING=1")
    assert daemon.process.wait(timeout=30) == 0


def test_sigterm_mid_tap_finishes_the_tap(tmp_path: Path) -> None:
    slow = Daemon(tmp_path, delay=1.5)  # the person takes 1.5 s to walk through
    try:
        slow.wait_for("READY=1")
        slow.send(f"tap {card_number(1)} seq=1")  # the leader: admitted at any hour
        slow.wait_records(1)  # decided and committed, gate open, passage pending
        code, _, err = slow.stop()
        assert code == 0, err
        kinds = [(r["kind"], r.get("used")) for r in slow.records()]
        assert kinds == [("door", None), ("passage", True)]
    finally:
        slow.kill()


def test_bad_config_refuses_to_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        CONFIG.format(state=tmp_path, delay=0).replace("open_seconds = 3", "open_seconds = 0")
    )
    result = subprocess.run(
        [sys.executable, "-m", "terminal", "run", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "door.open_seconds" in result.stderr
    assert "Traceback" not in result.stderr


def _damaged_journal_leaf(state: Path) -> None:
    path, _ = damaged_site(state)
    overwrite(path, oldest_journal_leaf(path), 100, 1400)  # nothing at start reads it


def test_a_database_found_damaged_is_quarantined_and_the_daemon_goes_on(tmp_path: Path) -> None:
    daemon = Daemon(
        tmp_path,
        extra="[store]\nintegrity_check_after_seconds = 0\n",
        prepare=_damaged_journal_leaf,
    )
    try:
        daemon.wait_for("READY=1")
        daemon.wait_for("READY=1")  # again, after the check found the damage and restarted it
        path = daemon.state / "terminal.db"
        assert len(quarantined_files(path)) == 1
        [quarantined] = quarantined_files(path)
        marker = daemon.state / (quarantined + ".salvaged")
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        store = Store.open(path)
        try:
            assert store.records() == [] and store.check_integrity() == []
            with store.read() as conn:
                (salvaged,) = conn.execute("SELECT count(*) FROM salvaged").fetchone()
        finally:
            store.close()
        # Only the records on the page overwritten are gone; none had reached HQ.
        assert 2950 < salvaged < 3000, marker.read_text()
        assert daemon.process.poll() is None
        code, out, err = daemon.stop()
    finally:
        daemon.kill()
    assert code == 0, err
    assert "Traceback" not in out + err
    assert "moved aside" in out + err and "is damaged" in out + err
    assert f"{salvaged} queued for HQ" in out + err


FULL_DISK_AT_CLOSE = '''
import sqlite3

from terminal.store import store


class FullDisk:
    """The writer connection as a full disk leaves it: the final checkpoint cannot write."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql, *args):
        if "wal_checkpoint" in sql:
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def close(self):
        self._conn.close()


def close(self, _close=store.Store.close):
    self._conn = FullDisk(self._conn)
    _close(self)


store.Store.close = close
'''


def test_sigterm_on_a_full_disk_logs_the_failed_checkpoint_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seam = tmp_path / "seam"
    seam.mkdir()
    (seam / "sitecustomize.py").write_text(FULL_DISK_AT_CLOSE)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(seam), os.environ.get("PYTHONPATH")]))
    )
    full = Daemon(tmp_path)
    try:
        full.wait_for("READY=1")
        full.send(f"tap {card_number(1)} seq=1")
        full.wait_records(2)  # the admission and its passage
        code, out, err = full.stop()
        assert code == 0, err
        assert "Traceback" not in err + out
        logged = [json.loads(line) for line in out.splitlines() if line.strip()]
        failed = [e for e in logged if "without its final checkpoint" in e["message"]]
        assert failed and failed[0]["level"] in ("ERROR", "error")
        assert any(entry["message"] == "stopped" for entry in logged)
        kinds = [r["kind"] for r in full.records()]  # nothing lost: the WAL is read back
        assert kinds == ["door", "passage"]
    finally:
        full.kill()
