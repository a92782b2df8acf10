"""The support bundle: one tar.gz a technician sends to the support desk.

It holds the status, the redacted config, recent security events, database statistics and the
result of ``db check`` (all from :meth:`Commands.bundle`, redacted where they are made), plus the
tail of a log file the technician names (journald's export is the operator's job:
``journalctl -u ykt-terminal -o cat > ykt.log``). No names, card numbers, ID numbers, face
templates or photos: database parts never select them, and every string that goes in — log lines
above all — is passed through the digit masker and, when the database is readable here, through
the holder-name scrubber.
"""

import io
import json
import os
import tarfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from terminal import __version__
from terminal.diag.redact import mask_digits, mask_secrets, name_candidates, scrub_names

NameLookup = Callable[[set[str]], set[str]]
MAX_LOG_BYTES = 4_000_000  # a tail is enough for support; a whole journal would be unwieldy
README = """\
ykt-terminal support bundle

manifest.json        what is in here and how it was redacted
status.json          the terminal's status when the bundle was made
config.json          the effective configuration; secrets appear only as references
events.json          recent security events (card numbers masked, no holder data)
database.json        database statistics and the result of `ykt diag db check`
log.txt              the tail of the log file given with --log, redacted (if given)

No names, card numbers, ID numbers, face templates or photos are included.
"""


def _mask_tree(value: Any) -> Any:
    # Strings only: our numbers (sizes, counts) are not personal data, and masking digits inside
    # serialised JSON could break it.
    if isinstance(value, str):
        return mask_secrets(mask_digits(value))
    if isinstance(value, dict):
        return {k: _mask_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_tree(v) for v in value]
    return value


def read_log_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of ``path`` (at most :data:`MAX_LOG_BYTES` of them)."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - MAX_LOG_BYTES))
        tail = deque(handle, maxlen=lines)
    return b"".join(tail).decode("utf-8", errors="replace")


@dataclass
class LogRedaction:
    """What the log redaction did, for the manifest."""

    lines: int = 0
    json_lines: int = 0  # decoded, so escaped CJK and every value were checked as text
    names_checked: bool = False
    names_masked: int = 0


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {change(str(k)): _map_strings(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]
    return value


def _clean(text: str) -> str:
    return mask_secrets(mask_digits(text))


def redact_log(text: str, lookup: NameLookup | None) -> tuple[str, LogRedaction]:
    """``text`` with digit runs and key-like runs masked and, if ``lookup`` is given, holders'
    names masked. JSON lines are decoded first (their encoder escapes CJK, which no text search
    would find) and written back with the characters themselves."""
    report = LogRedaction()
    parsed: list[Any] = []
    for line in text.splitlines():
        report.lines += 1
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict | list):
            report.json_lines += 1
            parsed.append(_map_strings(entry, _clean))
        else:
            parsed.append(_clean(line))
    names: set[str] = set()
    if lookup is not None:
        report.names_checked = True
        candidates: set[str] = set()
        for item in parsed:
            for value in [item] if isinstance(item, str) else _strings(item):
                candidates |= name_candidates(value)
        names = lookup(candidates)
        report.names_masked = len(names)
    out = []
    for item in parsed:
        if isinstance(item, str):
            out.append(scrub_names(item, names))
        else:
            scrubbed = _map_strings(item, lambda value: scrub_names(value, names))
            out.append(json.dumps(scrubbed, ensure_ascii=False))
    return "".join(line + "\n" for line in out), report


def _member(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o600
    tar.addfile(info, io.BytesIO(data))


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str).encode()


def default_name(terminal_id: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"ykt-bundle-{terminal_id}-{stamp}.tar.gz")


def write_bundle(
    out: Path,
    parts: dict[str, Any],
    *,
    source: str,
    log: Path | None = None,
    log_lines: int = 2000,
    lookup: NameLookup | None = None,
) -> dict[str, Any]:
    """Write the bundle to ``out`` (a new file, mode 0600); returns what went in."""
    now = time.time()
    status = parts.get("status") or {}
    members: dict[str, bytes] = {
        "README.txt": README.encode(),
        "status.json": _json(_mask_tree(status)),
        "config.json": _json(_mask_tree(parts.get("config") or {})),
        "events.json": _json(_mask_tree(parts.get("events") or [])),
        "database.json": _json(
            _mask_tree(
                {
                    "statistics": parts.get("statistics"),
                    "check": parts.get("check"),
                    "error": parts.get("database_error"),
                }
            )
        ),
    }
    log_note = "no log file given (use --log FILE)"
    if log is not None:
        text, done = redact_log(read_log_tail(log, log_lines), lookup)
        members["log.txt"] = text.encode()
        log_note = (
            f"last {done.lines} lines of {log} ({done.json_lines} JSON lines decoded and checked "
            "value by value); every string NFKC-normalised, digit runs of 11+ (grouped or not) "
            "and key-like runs masked; "
            + (
                f"holder names masked ({done.names_masked} distinct names found)"
                if done.names_checked
                else "names NOT checked (no database access)"
            )
        )
    manifest = {
        "created_at": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "diag_version": __version__,
        "terminal_id": status.get("terminal_id"),
        "source": source,
        "members": [*sorted(members), "manifest.json"],
        "log": log_note,
        "redaction": "no names, card numbers (masked to first/last 4), ID numbers, face "
        "templates or photos; secret references only, never their contents",
    }
    members["manifest.json"] = _json(manifest)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in members.items():
            _member(tar, name, data, now)
    return {
        "level": parts.get("level", "ok"),
        "path": str(out),
        "bytes": out.stat().st_size,
        "members": manifest["members"],
        "source": source,
        "log": log_note,
    }
