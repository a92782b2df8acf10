"""The diag socket refuses a peer that is neither root nor in the diag group.

The client runs under another uid with ``setpriv``; the daemon decides from the peer's kernel
credentials (SO_PEERCRED), so nothing the client claims matters.
"""

import grp
import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.diag.conftest import DiagDaemon, diag_group

pytestmark = pytest.mark.integration
NOBODY = 65534


# The client runs as another uid, which cannot read the project or its venv when the checkout
# lives in root's home (as on CI), so it is a few lines of the wire protocol run by the system
# Python: what is tested here is the server's decision, from the peer's kernel credentials.
RAW_CLIENT = """
import json, socket, sys
path, cmd, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    sock.connect(path)
except OSError as exc:
    print(json.dumps({"connect_error": exc.strerror}))
    sys.exit(0)
try:
    sock.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\\n")
except BrokenPipeError:
    pass  # a refused peer is answered and hung up on before its request is read
print(sock.makefile("rb").readline().decode().strip() or "{}")
"""


@pytest.fixture
def setpriv() -> tuple[str, str]:
    found = shutil.which("setpriv")
    python = shutil.which("python3", path="/usr/bin:/bin")
    if found is None or python is None:
        pytest.skip(
            "setpriv (util-linux) or the system python3 is missing: cannot run a client "
            "as another uid"
        )
    return found, python


def as_user(
    tools: tuple[str, str], uid: int, gid: int, socket_path: object, cmd: str, **args: object
) -> dict[str, object]:
    setpriv, python = tools
    done = subprocess.run(
        [
            setpriv,
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            python,
            "-c",
            RAW_CLIENT,
            str(socket_path),
            cmd,
            json.dumps(args),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, object] = json.loads(done.stdout)
    return answer


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


def test_stranger_is_stopped_by_the_file_mode(setpriv: tuple[str, str], door: DiagDaemon) -> None:
    answer = as_user(setpriv, NOBODY, NOBODY, door.socket, "status")
    assert answer == {"connect_error": "Permission denied"}


def test_stranger_is_refused_by_peer_credentials(
    setpriv: tuple[str, str], world_writable: DiagDaemon
) -> None:
    answer = as_user(setpriv, NOBODY, NOBODY, world_writable.socket, "status")
    assert answer["ok"] is False
    error = answer["error"]
    assert isinstance(error, dict)
    assert error["code"] == "denied"
    assert f"uid {NOBODY} is neither root nor a member of" in error["message"]
    # Refused before any command ran: nothing about the terminal came back.
    assert "diag-gate-01" not in json.dumps(answer)


def test_stranger_gets_no_command_through(
    setpriv: tuple[str, str], world_writable: DiagDaemon
) -> None:
    before = world_writable.journal_count()
    for cmd in ("gate_test", "tx", "bundle", "card"):
        answer = as_user(setpriv, NOBODY, NOBODY, world_writable.socket, cmd)
        assert answer["ok"] is False, cmd
    assert world_writable.journal_count() == before
    opened = world_writable.call("events", type="maintenance_open", limit=1000)["events"]
    assert all(event["detail"]["uid"] == 0 for event in opened)


def test_group_member_is_served(setpriv: tuple[str, str], door: DiagDaemon) -> None:
    group = existing_group()
    answer = as_user(setpriv, NOBODY, group.gr_gid, door.socket, "status")
    assert answer["ok"] is True, answer
    result = answer["result"]
    assert isinstance(result, dict)
    assert result["terminal_id"] == "diag-gate-01"
