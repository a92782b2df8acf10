"""The diag socket refuses a peer that is neither root nor in the diag group.

The client runs under another uid with ``setpriv``; the daemon decides from the peer's kernel
credentials (SO_PEERCRED), so nothing the client claims matters.
"""

import grp
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from terminal.diag.protocol import Exit
from tests.diag.conftest import DiagDaemon, diag_group

pytestmark = pytest.mark.integration
NOBODY = 65534


@pytest.fixture
def setpriv() -> str:
    found = shutil.which("setpriv")
    if found is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot run a client as another uid")
    return found


def as_user(setpriv: str, uid: int, gid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            setpriv,
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            sys.executable,
            "-m",
            "terminal.diag",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


@pytest.fixture
def world_writable(door: DiagDaemon) -> Iterator[DiagDaemon]:
    """The socket file opened to everyone, so only the peer-credential check stands in the way."""
    mode = door.socket.stat().st_mode & 0o777
    door.socket.chmod(0o666)
    yield door
    door.socket.chmod(mode)


def existing_group() -> grp.struct_group:
    group = diag_group()
    if group is None:
        pytest.skip("no group on this machine can stand in for ykt-diag")
    return group


def test_socket_file_belongs_to_the_diag_group(door: DiagDaemon) -> None:
    info = door.socket.stat()
    assert info.st_mode & 0o777 == 0o660
    assert info.st_gid == existing_group().gr_gid


def test_stranger_is_stopped_by_the_file_mode(setpriv: str, door: DiagDaemon) -> None:
    done = as_user(setpriv, NOBODY, NOBODY, "status", "--socket", str(door.socket))
    assert done.returncode == Exit.DENIED, done.stderr
    assert "permission denied" in done.stderr
    assert "Traceback" not in done.stderr


def test_stranger_is_refused_by_peer_credentials(setpriv: str, world_writable: DiagDaemon) -> None:
    for form in ((), ("--json",)):
        done = as_user(
            setpriv, NOBODY, NOBODY, "status", "--socket", str(world_writable.socket), *form
        )
        assert done.returncode == Exit.DENIED, done.stderr
        message = json.loads(done.stdout)["error"]["message"] if form else done.stderr
        assert f"uid {NOBODY} is neither root nor a member of" in message
    # Refused before any command ran: nothing about the terminal came back.
    assert "diag-gate-01" not in done.stdout + done.stderr


def test_stranger_gets_no_command_through(setpriv: str, world_writable: DiagDaemon) -> None:
    before = world_writable.journal_count()
    for argv in (("gate", "test"), ("tx",), ("bundle", "--out", "/nonexistent/b.tar.gz")):
        done = as_user(setpriv, NOBODY, NOBODY, *argv, "--socket", str(world_writable.socket))
        assert done.returncode == Exit.DENIED, (argv, done.stderr)
    assert world_writable.journal_count() == before
    opened = world_writable.call("events", type="maintenance_open", limit=1000)["events"]
    assert all(event["detail"]["uid"] == 0 for event in opened)


def test_group_member_is_served(setpriv: str, door: DiagDaemon) -> None:
    group = existing_group()
    done = as_user(setpriv, NOBODY, group.gr_gid, "status", "--json", "--socket", str(door.socket))
    assert done.returncode in (Exit.OK, Exit.DEGRADED), done.stderr
    assert json.loads(done.stdout)["terminal_id"] == "diag-gate-01"
