"""A scanner's byte stream cut into codes: pure, bytes in, texts and refusals out.

Scanner modules end each code with a suffix their configuration chooses: CR, LF or CRLF. Any of
them ends a line here, and the empty lines a CRLF (or a run of endings) leaves are skipped, so
the three need no setting. A code is printable ASCII (an electronic card's code is base64url and
dots); anything else on a line is line noise or a code meant for another system, refused whole.
A line that grows past ``max_length`` is refused and everything up to the next ending is skipped
without being kept, so a line that never ends costs no memory and the next line arrives intact.
"""

import re
from dataclasses import dataclass
from enum import StrEnum

_ENDINGS = re.compile(rb"[\r\n]")
_PRINTABLE = re.compile(rb"[\x20-\x7e]+")


class Why(StrEnum):
    OVERLONG = "overlong"
    GARBAGE = "garbage"  # a byte that is not printable ASCII


@dataclass(frozen=True, slots=True)
class Refused:
    """A line that was dropped: why, and how many bytes it had (never its content: it may be
    most of somebody's code)."""

    why: Why
    size: int


def refusal(text: str, max_length: int) -> Why | None:
    """Why a decoded ``text`` is not delivered as a code, or ``None`` when it is acceptable."""
    if len(text) > max_length:
        return Why.OVERLONG
    if not text.isascii() or _PRINTABLE.fullmatch(text.encode("ascii")) is None:
        return Why.GARBAGE
    return None


class LineSplitter:
    def __init__(self, max_length: int) -> None:
        self._max = max_length
        self._line = bytearray()
        self._skipped = 0  # > 0: the line in progress is already too long, being skipped

    def feed(self, data: bytes) -> list[str | Refused]:
        """The lines ``data`` completes, in order; a partial line waits for the next call."""
        pieces = _ENDINGS.split(data)
        out: list[str | Refused] = []
        for piece in pieces[:-1]:
            self._extend(piece)
            ended = self._end()
            if ended is not None:
                out.append(ended)
        self._extend(pieces[-1])
        return out

    def _extend(self, piece: bytes) -> None:
        if self._skipped:
            self._skipped += len(piece)
            return
        self._line += piece
        if len(self._line) > self._max:
            self._skipped = len(self._line)
            self._line.clear()

    def _end(self) -> str | Refused | None:
        try:
            if self._skipped:
                return Refused(Why.OVERLONG, self._skipped)
            if not self._line:
                return None
            if _PRINTABLE.fullmatch(self._line) is None:
                return Refused(Why.GARBAGE, len(self._line))
            return self._line.decode("ascii")
        finally:
            self._line.clear()
            self._skipped = 0
