"""The daemon's diag socket: a Unix stream socket speaking JSON lines, for root and one group.

Access is decided per connection from the peer's kernel-reported credentials (``SO_PEERCRED``),
not from anything the client says: root, the daemon's own user, or a peer whose primary group is
the configured group or whose user is listed in it (read from the group database on every
connection, so adding a technician to the group needs no restart). The socket file is also
made group-only when the daemon may hand it to that group, so the kernel already stops most
strangers at ``connect``.

Diag is secondary to serving taps: if the socket cannot be set up the daemon logs why and goes on.
"""

import grp
import logging
import os
import pwd
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from terminal.config.diag import DiagSection
from terminal.diag.commands import Commands, SyncControl
from terminal.diag.live import LiveTerminal
from terminal.diag.protocol import (
    MAX_LINE,
    PROTOCOL_VERSION,
    DiagError,
    ErrorCode,
    answer,
    decode,
    encode,
    refusal,
)

if TYPE_CHECKING:
    from terminal.app import App

logger = logging.getLogger(__name__)

MAX_CLIENTS = 8  # technicians are one or two people; more connections are a mistake or abuse
IDLE_SECONDS = 600.0  # a connection that sends nothing this long is closed (watch sends often)
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end, as the kernel recorded at connect."""
    pid, uid, gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return pid, uid, gid


class Access:
    """Who may talk to the socket: root, the daemon's own user, and members of ``group``."""

    def __init__(self, group: str) -> None:
        self.group = group

    def check(self, uid: int, gid: int) -> str | None:
        """``None`` when allowed, else why not (said to the client and logged)."""
        # The daemon's own user can read the database directly; refusing it protects nothing.
        if uid in (0, os.geteuid()):
            return None
        try:
            group = grp.getgrnam(self.group)
        except KeyError:
            return f"uid {uid} is not root and the diag group {self.group!r} does not exist"
        if gid == group.gr_gid:
            return None
        try:
            user = pwd.getpwuid(uid)
        except KeyError:
            user = None
        if user is not None and (user.pw_name in group.gr_mem or user.pw_gid == group.gr_gid):
            return None
        return f"uid {uid} is neither root nor a member of {self.group!r}"


class _Handler(socketserver.StreamRequestHandler):
    timeout = IDLE_SECONDS
    server: "_Server"

    def handle(self) -> None:
        pid, uid, gid = peer_credentials(self.request)
        refused = self.server.access.check(uid, gid)
        if refused is not None:
            logger.warning("diag: refused pid %d: %s", pid, refused)
            self._send(refusal(ErrorCode.DENIED, refused))
            return
        if not self.server.slots.acquire(blocking=False):
            self._send(refusal(ErrorCode.BUSY, f"more than {MAX_CLIENTS} diag clients"))
            return
        try:
            self._serve(uid)
        finally:
            self.server.slots.release()

    def _serve(self, uid: int) -> None:
        while True:
            try:
                line = self.rfile.readline(MAX_LINE + 1)
            except (TimeoutError, OSError):
                return
            if not line:
                return
            if len(line) > MAX_LINE:
                self._send(refusal(ErrorCode.BAD_REQUEST, "request too long"))
                return
            if not self._send(self._one(line, uid)):
                return

    def _one(self, line: bytes, uid: int) -> dict[str, Any]:
        try:
            request = decode(line)
            name = request.get("cmd")
            args = request.get("args") or {}
            if not isinstance(name, str) or not isinstance(args, dict):
                raise DiagError(ErrorCode.BAD_REQUEST, "a request is {cmd: str, args: {}}")
            if name == "hello":
                return answer({"protocol": PROTOCOL_VERSION, "commands": sorted(self._names())})
            logger.debug("diag: uid %d runs %s", uid, name)
            return answer(self.server.commands.run(name, args, uid))
        except DiagError as exc:
            return refusal(exc.code, exc.message)
        except Exception as exc:
            # One bad command must not take the socket (let alone the daemon) down.
            logger.exception("diag: command failed")
            return refusal(ErrorCode.FAILED, f"internal error: {type(exc).__name__}: {exc}")

    def _names(self) -> frozenset[str]:
        return self.server.commands.names

    def _send(self, message: dict[str, Any]) -> bool:
        try:
            self.wfile.write(encode(message))
            self.wfile.flush()
        except OSError:
            return False
        return True


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True  # a technician's hanging client never delays the daemon's exit
    block_on_close = False

    def __init__(self, path: str, commands: Commands, access: Access) -> None:
        self.commands = commands
        self.access = access
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(path, _Handler)


def _clear_stale(path: Path) -> None:
    """Remove a socket file left by a daemon that died; refuse if one is still listening."""
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise OSError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise OSError(f"another process is serving {path}")


def _restrict(path: Path, group: str) -> None:
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        path.chmod(0o600)
        logger.warning("diag: group %r does not exist; only root may use %s", group, path)
        return
    try:
        os.chown(path, -1, gid)
    except PermissionError:
        # Not a member of the group, so the file cannot be handed to it: let the kernel pass
        # everyone to connect() and the peer-credential check do all the refusing.
        path.chmod(0o666)
        logger.warning(
            "diag: cannot give %s to group %r (add the daemon's user to it); relying on the "
            "peer-credential check alone",
            path,
            group,
        )
        return
    path.chmod(0o660)


class DiagServer:
    """The socket server, on its own thread; :meth:`start` and :meth:`stop` bracket the App."""

    def __init__(self, commands: Commands, section: DiagSection) -> None:
        self.commands = commands
        self.section = section
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        return self.section.socket

    def start(self) -> None:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale(path)
        self._server = _Server(str(path), self.commands, Access(self.section.group))
        _restrict(path, self.section.group)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.5}, name="diag-server"
        )
        self._thread.daemon = True
        self._thread.start()
        logger.info("diag: serving %s (root and group %s)", path, self.section.group)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with suppress(FileNotFoundError):
            self.path.unlink()
        self._server = None


@contextmanager
def serving(
    app: "App",
    section: DiagSection | None = None,
    sync: SyncControl | None = None,
    live: LiveTerminal | None = None,
) -> Iterator[DiagServer | None]:
    """Serve diag for ``app`` while the block runs; yields ``None`` when diag is off or broken.

    ``live`` is the one whose hooks ``app`` was built with (the daemon's); without it diag
    still reports on the terminal, but cannot take a card for a dry run.
    """
    section = section or DiagSection()
    if not section.enabled:
        yield None
        return
    live = live or LiveTerminal()
    live.bind(app)
    server = DiagServer(Commands(app.config, live=live, diag=section, sync=sync), section)
    try:
        server.start()
    except OSError as exc:
        logger.error("diag: cannot serve %s: %s; the terminal runs without it", section.socket, exc)
        live.detach()
        yield None
        return
    try:
        yield server
    finally:
        server.stop()
        live.detach()
