"""The client end of the diag socket."""

import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from models.errors import TerminalError
from terminal.diag.protocol import MAX_LINE, DiagError, ErrorCode, decode, encode

# Results are bigger than requests (a bundle's events), but still bounded.
MAX_ANSWER = 64 * MAX_LINE


class UnreachableError(TerminalError):
    """No daemon answers on the diag socket (not running, or diag is off)."""


class DiagClient:
    """One connection to the daemon; several requests may be sent over it, one at a time."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(path))
        except FileNotFoundError:
            self._sock.close()
            raise UnreachableError(f"no diag socket at {path}: is the daemon running?") from None
        except ConnectionRefusedError:
            self._sock.close()
            raise UnreachableError(
                f"nothing listens on {path}: the daemon is not running"
            ) from None
        except PermissionError:
            self._sock.close()
            raise DiagError(
                ErrorCode.DENIED,
                f"permission denied on {path}: use root or a member of the diag group",
            ) from None
        except OSError as exc:
            self._sock.close()
            raise UnreachableError(f"cannot connect to {path}: {exc.strerror}") from None
        self._file = self._sock.makefile("rb")

    def __enter__(self) -> "DiagClient":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def call(
        self, name: str, args: dict[str, Any] | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The command's result; :class:`DiagError` when the daemon refused or it failed."""
        self._sock.settimeout(timeout)
        try:
            self._sock.sendall(encode({"cmd": name, "args": args or {}}))
            line = self._file.readline(MAX_ANSWER)
        except TimeoutError:
            raise DiagError(ErrorCode.TIMEOUT, f"the daemon did not answer {name}") from None
        except OSError as exc:
            # The server closes right after saying "denied"; a write may then hit EPIPE.
            line = self._file.readline(MAX_ANSWER) if isinstance(exc, BrokenPipeError) else b""
        if not line:
            raise UnreachableError("the daemon closed the connection")
        message = decode(line)
        if message.get("ok"):
            result = message.get("result")
            return result if isinstance(result, dict) else {}
        error = message.get("error") or {}
        try:
            code = ErrorCode(str(error.get("code")))
        except ValueError:
            code = ErrorCode.FAILED
        raise DiagError(code, str(error.get("message", "refused")))
