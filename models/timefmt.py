"""The one way this code writes a time on the wire or in the database: RFC 3339, UTC, ``Z``.

Every formatter used to be written by hand, and one of them put a ``Z`` after a local time. An
aware time is converted; a naive one is refused, since nobody can say which zone it meant.
"""

from datetime import UTC, datetime
from typing import Literal

Precision = Literal["seconds", "milliseconds"]


def rfc3339(moment: datetime, timespec: Precision = "seconds") -> str:
    """``2026-11-23T01:00:00Z`` (or ``...:00.123Z``) for an aware ``moment``, in UTC."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone: cannot write it as RFC 3339")
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def utc_now(timespec: Precision = "seconds") -> str:
    return rfc3339(datetime.now(UTC), timespec)
