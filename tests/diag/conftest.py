"""A real daemon on simulated hardware with the diag socket, and ways to run ``ykt diag``.

The socket lives in a directory of its own that other users may traverse (the access tests
connect as uid 65534); pytest's own temporary directories are private to root.
"""

import contextlib
import grp
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from terminal.diag.cli import main as diag_main
from terminal.diag.client import DiagClient, UnreachableError
from terminal.store import Store
from tests.fixtures import seed

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 20

DOOR = """
[terminal]
id = "diag-gate-01"
site = "demo-centre"
state_dir = "{state}"
[diag]
socket = "{socket}"
group = "{group}"
[log]
level = "info"
format = "json"
[door]
id = "east-gate"
direction = "in"
open_seconds = 2
[reader]
driver = "sim"
script = "-"
[gate]
driver = "sim"
passage = "pass"
passage_delay_seconds = 0.05
"""

SHOP = """
[terminal]
id = "diag-shop-01"
site = "demo-centre"
state_dir = "{state}"
[diag]
socket = "{socket}"
group = "{group}"
[log]
level = "info"
format = "json"
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


def diag_group() -> grp.struct_group | None:
    """An existing group other than root's and 65534's, to stand in for ykt-diag."""
    for name in ("users", "daemon", "staff", "adm"):
        with contextlib.suppress(KeyError):
            found = grp.getgrnam(name)
            if found.gr_gid not in (0, 65534):
                return found
    return None


class DiagDaemon:
    """``ykt run`` (the daemon, serving the diag socket) in a subprocess."""

    def __init__(
        self,
        work: Path,
        template: str = DOOR,
        group: str = "ykt-diag",
        prepare: Callable[[Store], None] = lambda store: None,
    ) -> None:
        self.work = work
        self.state = work / "state"
        store = Store.open(self.state / "terminal.db")
        seed(store)
        prepare(store)
        store.close()
        self.socket_dir = Path(tempfile.mkdtemp(prefix="ykt-diag-"))
        self.socket_dir.chmod(0o755)
        self.socket = self.socket_dir / "diag.sock"
        self.config = work / "terminal.toml"
        self.config.write_text(template.format(state=self.state, socket=self.socket, group=group))
        self.log = work / "daemon.log"
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "terminal", "run", "--config", str(self.config)],
            stdin=subprocess.PIPE,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=work,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited: {self.log.read_text()}")
            try:
                with DiagClient(self.socket, timeout=2) as client:
                    client.call("hello")
                return
            except UnreachableError:
                time.sleep(0.05)
        raise AssertionError(f"diag socket never answered: {self.log.read_text()}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def journal_count(self) -> int:
        conn = sqlite3.connect(f"file:{self.state / 'terminal.db'}?mode=ro", uri=True)
        try:
            return int(conn.execute("SELECT count(*) FROM journal").fetchone()[0])
        finally:
            conn.close()

    def wait_journal(self, count: int) -> None:
        deadline = time.monotonic() + 20
        while self.journal_count() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"journal never reached {count}")
            time.sleep(0.05)

    def call(self, name: str, **args: Any) -> dict[str, Any]:
        with DiagClient(self.socket) as client:
            return client.call(name, args)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        self._log_file.close()
        return int(self.process.returncode)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.socket_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiagDaemon]:
    group = diag_group()
    running = DiagDaemon(
        tmp_path_factory.mktemp("door"), group="ykt-diag" if group is None else group.gr_name
    )
    yield running
    running.close()


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiagDaemon]:
    running = DiagDaemon(tmp_path_factory.mktemp("shop"), template=SHOP)
    yield running
    running.close()


@pytest.fixture(autouse=True)
def _eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a serial console gives; rich also reads it for output that is not a terminal.
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("NO_COLOR", raising=False)


def run_diag(*argv: str) -> tuple[int, str, str]:
    """``ykt diag ARGV`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = diag_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def run_json(*argv: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run_diag(*argv, "--json")
    assert "Traceback" not in err
    return code, json.loads(out)


def diag_process(*argv: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "terminal.diag", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"COLUMNS": "80"},
        **kwargs,
    )
