"""``ykt diag watch`` renders its dashboard, in place on a terminal, and stops after --count."""

import json
import os
import pty
import select
import subprocess
import sys
import time

import pytest

from terminal.diag.protocol import Exit
from tests.diag.conftest import DiagDaemon, diag_process
from tests.fixtures import card_number

pytestmark = pytest.mark.integration


def test_watch_renders_to_a_pipe(door: DiagDaemon) -> None:
    door.send(f"tap {card_number(1)} seq=1")
    client = diag_process(
        "watch", "--count", "2", "--interval", "0.1", "--socket", str(door.socket)
    )
    out, err = client.communicate(timeout=30)
    assert client.returncode in (Exit.OK, Exit.DEGRADED), err
    assert "ykt diag watch" in out
    assert "last decisions" in out
    assert "3601************0001" in out
    assert card_number(1) not in out


def test_watch_json_prints_one_snapshot_per_refresh(door: DiagDaemon) -> None:
    client = diag_process(
        "watch", "--count", "3", "--interval", "0.1", "--json", "--socket", str(door.socket)
    )
    out, err = client.communicate(timeout=30)
    assert client.returncode in (Exit.OK, Exit.DEGRADED), err
    snapshots = [json.loads(line) for line in out.splitlines()]
    assert len(snapshots) == 3
    assert all(s["status"]["daemon"]["running"] for s in snapshots)


def test_watch_refreshes_in_place_on_a_terminal(door: DiagDaemon) -> None:
    leader, follower = pty.openpty()
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "terminal.diag",
            "watch",
            "--count",
            "3",
            "--interval",
            "0.2",
            "--socket",
            str(door.socket),
        ],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=os.environ | {"COLUMNS": "80", "LINES": "40", "TERM": "xterm"},
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the client closed its end
                    break
                if not chunk:
                    break
                seen += chunk
            elif client.poll() is not None:
                break
        assert client.wait(timeout=10) in (Exit.OK, Exit.DEGRADED)
    finally:
        os.close(leader)
        if client.poll() is None:
            client.kill()
            client.wait()
    text = seen.decode("utf-8", errors="replace")
    assert text.count("ykt diag watch") >= 3  # one frame per refresh (and one at the end)...
    assert "\x1b[2K" in text or "\x1b[1A" in text  # ...drawn over the previous one
