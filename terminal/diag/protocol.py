"""The diag channel's wire format and the exit codes scripts rely on.

One JSON object per line in each direction. A request is ``{"cmd": NAME, "args": {...}}``; the
answer is ``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": {"code", "message"}}``.
A client may send several requests on one connection (``watch`` does), one answer each, in order.
Every result carries a ``level`` that maps to the exit code, so the human and the ``--json``
forms of a command always exit alike.
"""

import json
from collections.abc import Sequence
from enum import IntEnum, StrEnum
from typing import Any

from models.errors import TerminalError

MAX_LINE = 64 * 1024  # a request is a command name and a few arguments; anything longer is abuse
PROTOCOL_VERSION = 1
# The tap loop, and so the watchdog ping (WatchdogSec=15, pinged every 7.5 s), waits for a whole
# gate test: 5 s plus the passage grace keeps the longest gap between pings under 15 s.
GATE_TEST_MAX_SECONDS = 5.0
FACE_MAX_FRAMES = 20  # `ykt diag face --frames`; fewer are analysed if its 5 s budget runs out


class Exit(IntEnum):
    """Exit codes of ``ykt diag``; documented in docs/operations.md."""

    OK = 0  # healthy, or the command did what was asked
    FAILED = 1  # a check failed or a device is down: the terminal is not serving as it should
    USAGE = 2  # bad arguments or an invalid config (the same as every other ykt command)
    DEGRADED = 3  # serving, but something needs attention (clock, disk, backlog, HQ head)
    UNREACHABLE = 4  # the daemon is not running and the command needs it
    DENIED = 5  # the caller is neither root nor in the diag group
    NOT_AVAILABLE = 6  # the part is not built, not configured or not on this kind of terminal
    TIMEOUT = 7  # nothing happened in time (no card was tapped)


class Level(StrEnum):
    """How a result should be judged; each maps to one exit code."""

    OK = "ok"
    DEGRADED = "degraded"
    FAILED = "failed"
    NOT_AVAILABLE = "not_available"


LEVEL_EXIT: dict[str, Exit] = {
    Level.OK: Exit.OK,
    Level.DEGRADED: Exit.DEGRADED,
    Level.FAILED: Exit.FAILED,
    Level.NOT_AVAILABLE: Exit.NOT_AVAILABLE,
}


class ErrorCode(StrEnum):
    """Why a request got no result; each maps to one exit code."""

    BAD_REQUEST = "bad_request"
    DENIED = "denied"
    NOT_AVAILABLE = "not_available"
    BUSY = "busy"
    TIMEOUT = "timeout"
    FAILED = "failed"


ERROR_EXIT: dict[str, Exit] = {
    ErrorCode.BAD_REQUEST: Exit.USAGE,
    ErrorCode.DENIED: Exit.DENIED,
    ErrorCode.NOT_AVAILABLE: Exit.NOT_AVAILABLE,
    ErrorCode.BUSY: Exit.FAILED,
    ErrorCode.TIMEOUT: Exit.TIMEOUT,
    ErrorCode.FAILED: Exit.FAILED,
}


class DiagError(TerminalError):
    """A diag command could not produce its result; ``code`` says which kind of failure."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def worst(levels: Sequence[str]) -> Level:
    """The most serious of ``levels`` (failed > degraded > ok)."""
    if Level.FAILED in levels:
        return Level.FAILED
    if Level.DEGRADED in levels:
        return Level.DEGRADED
    return Level.OK


def exit_for(result: dict[str, Any]) -> Exit:
    return LEVEL_EXIT.get(str(result.get("level", Level.OK)), Exit.OK)


def encode(message: dict[str, Any]) -> bytes:
    return (
        json.dumps(message, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
        + b"\n"
    )


def decode(line: bytes) -> dict[str, Any]:
    """One message; :class:`DiagError` (bad_request) for anything that is not a JSON object."""
    try:
        value = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DiagError(ErrorCode.BAD_REQUEST, f"not a JSON line: {exc}") from None
    if not isinstance(value, dict):
        raise DiagError(ErrorCode.BAD_REQUEST, "a message is a JSON object")
    return value


def answer(result: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": result}


def refusal(code: ErrorCode, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": str(code), "message": message}}
