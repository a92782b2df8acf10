"""Snapshots: the whole allowlist in chunks, for new terminals and ones too far behind.

Content is JSON lines (one holder, card, group, calendar, rule, face or purse per line, each with
the seq of its last change, so a priority deny newer than the snapshot still wins). Lines never
straddle chunks; each chunk's ``data`` is ``base64(zlib(lines))`` and ``sha256`` is over the
uncompressed content of all chunks in order. The terminal streams chunks into a staging database
as they arrive (bounded memory, whatever the site's size), checks the hash at the end and only
then swaps the staged data in. A half-received or corrupt snapshot is discarded.
"""

import hashlib
import logging
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from models.errors import TerminalError
from sync.changes import PURSES, Change, bad, integer, parse_change, req_text, text
from sync.envelope import Rejected, b64decode, b64encode, loads_content
from sync.port import PurseBalance, SnapshotStage, SyncPort

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 384 * 1024  # uncompressed; compressed + base64 stays well under 1 MiB
# Fastest zlib level: face templates are nearly incompressible, and level 6 took twice as long
# for 3 % less (100,000 holders with templates: 57 MB vs 55 MB).
ZLIB_LEVEL = 1
MAX_CHUNKS = 100_000
_SHA = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Chunks:
    """A snapshot ready to publish: its chunks (uncompressed) and the hash of the whole.

    Chunks are compressed one at a time as :func:`chunk_bodies` yields them: the hash is over
    the uncompressed content, so it is known before any compression, and a publisher that sends
    each chunk as it is compressed lets the terminal start staging while the rest are still
    being compressed (compression is most of HQ's time for a snapshot with face templates).
    """

    raw: list[bytes]
    sha256: str
    lines: int
    raw_bytes: int


# A chunk is at most a few hundred KiB compressed; the lines of 100,000 holders inflate to a few
# MiB. Beyond this it is a decompression bomb (one 1 MiB chunk inflated to 783 MB before).
MAX_CHUNK_INFLATED = 32 * 1024 * 1024


def inflate(data: bytes) -> bytes:
    """The chunk's lines, refusing to inflate past :data:`MAX_CHUNK_INFLATED`."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, MAX_CHUNK_INFLATED)
    except zlib.error:
        raise bad("snapshot chunk is not zlib data") from None
    if inflater.unconsumed_tail:
        raise bad(f"snapshot chunk inflates beyond {MAX_CHUNK_INFLATED} bytes")
    if not inflater.eof:
        raise bad("snapshot chunk is truncated zlib data")
    return raw


def build_chunks(lines: Iterable[bytes], chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Chunks:
    """Pack newline-terminated JSON ``lines`` into chunks of at most ``chunk_bytes``."""
    digest = hashlib.sha256()
    chunks: list[bytes] = []
    pending: list[bytes] = []
    size = count = total = 0
    for item in lines:
        line = item if item.endswith(b"\n") else item + b"\n"
        if pending and size + len(line) > chunk_bytes:
            raw = b"".join(pending)
            digest.update(raw)
            chunks.append(raw)
            pending, size = [], 0
        pending.append(line)
        size += len(line)
        count += 1
        total += len(line)
    if pending or not chunks:
        raw = b"".join(pending)
        digest.update(raw)
        chunks.append(raw)
    return Chunks(chunks, digest.hexdigest(), count, total)


def chunk_bodies(chunks: Chunks, *, snap_id: str, seq: int) -> Iterator[dict[str, Any]]:
    for index, raw in enumerate(chunks.raw):
        yield {
            "snap": snap_id,
            "i": index,
            "n": len(chunks.raw),
            "seq": seq,
            "sha256": chunks.sha256,
            "data": b64encode(zlib.compress(raw, ZLIB_LEVEL)),
        }


def parse_item(data: Any) -> tuple[str, Change | PurseBalance | int]:
    """One content line: ``("item", change or purse)`` or ``("meta", tx_through)``."""
    if not isinstance(data, dict):
        raise bad("snapshot line is not an object")
    kind = data.get("kind")
    if kind == "meta":
        return "meta", integer(data, "tx_through", minimum=0)
    if kind == "purse":
        purse = req_text(data, "purse")
        if purse not in PURSES:
            # Caught here, as a rejected message, not later as a storage error.
            raise bad(f"snapshot purse: unknown {purse!r}")
        return "item", PurseBalance(
            req_text(data, "account"),
            purse,
            integer(data, "balance"),
            text(data, "expires", optional=True),
        )
    return "item", parse_change(data)


def parse_lines(raw: bytes) -> list[Any]:
    """The JSON values of a chunk's lines, decoded in one call (one per line is much slower)."""
    lines = [line for line in raw.splitlines() if line.strip()]
    try:
        values = loads_content(b"[" + b",".join(lines) + b"]")
    except (ValueError, RecursionError) as exc:
        raise bad(f"snapshot chunk is not JSON lines: {str(exc)[:80]}") from None
    if len(values) != len(lines):
        raise bad("a snapshot line holds more than one value")
    return list(values)


@dataclass(frozen=True, slots=True)
class _Header:
    snap: str
    n: int
    seq: int
    sha256: str


def _header(body: Mapping[str, Any]) -> tuple[_Header, int, bytes]:
    snap = req_text(body, "snap")
    n = integer(body, "n", minimum=1)
    index = integer(body, "i", minimum=0)
    seq = integer(body, "seq", minimum=0)
    sha = req_text(body, "sha256")
    if n > MAX_CHUNKS or index >= n or not _SHA.match(sha):
        raise bad("snapshot chunk header out of range")
    return _Header(snap, n, seq, sha), index, b64decode(body.get("data"), "data")


class Progress(StrEnum):
    IGNORED = "ignored"  # stale, duplicate, or for a snapshot we dropped
    STAGED = "staged"
    APPLIED = "applied"
    FAILED = "failed"  # corrupt: discarded, the caller resyncs


class SnapshotAssembler:
    """Receives chunks (in any order, duplicates allowed) and applies a complete snapshot."""

    def __init__(self, port: SyncPort, max_buffered: int = 16) -> None:
        self._port = port
        self._max_buffered = max_buffered
        self._header: _Header | None = None
        self._stage: SnapshotStage | None = None
        self._next = 0
        self._buffer: dict[int, bytes] = {}
        self._digest = hashlib.sha256()
        self._tx_through = 0
        self._tail = b""

    @property
    def in_progress(self) -> str | None:
        return None if self._header is None else self._header.snap

    def offer(self, body: Mapping[str, Any], applied_seq: int) -> Progress:
        header, index, data = _header(body)
        current = self._header
        if current is not None and header.snap != current.snap:
            if header.seq <= current.seq:
                return Progress.IGNORED
            logger.info("snapshot %s superseded by %s", current.snap, header.snap)
            self.abandon()
            current = None
        if current is None:
            if header.seq <= applied_seq:
                return Progress.IGNORED
            self._start(header)
        elif header != current:
            self.abandon()
            raise bad("snapshot chunks disagree on n, seq or sha256")
        if index < self._next or index in self._buffer:
            return Progress.IGNORED
        if index > self._next:
            if len(self._buffer) >= self._max_buffered:
                self.abandon()
                raise bad("too many snapshot chunks out of order")
            self._buffer[index] = data
            return Progress.STAGED
        try:
            self._feed(data)
            while self._next in self._buffer:
                self._feed(self._buffer.pop(self._next))
            if self._next == header.n:
                return self._finish(header)
        except (Rejected, TerminalError):
            # A chunk the store could not stage leaves nothing half-built behind either.
            self.abandon()
            raise
        return Progress.STAGED

    def _start(self, header: _Header) -> None:
        self._header = header
        self._stage = self._port.begin_snapshot(header.snap, header.seq)
        self._next = 0
        self._buffer.clear()
        self._digest = hashlib.sha256()
        self._tx_through = 0
        logger.info(
            "receiving snapshot %s at seq %d in %d chunks", header.snap, header.seq, header.n
        )

    def _feed(self, data: bytes) -> None:
        assert self._stage is not None
        raw = inflate(data)
        self._digest.update(raw)
        if not raw.endswith(b"\n") and raw:
            raise bad("snapshot chunk does not end with a whole line")
        items: list[Change | PurseBalance] = []
        for value_json in parse_lines(raw):
            what, value = parse_item(value_json)
            if what == "meta":
                assert isinstance(value, int)
                self._tx_through = value
            else:
                assert not isinstance(value, int)
                items.append(value)
        self._stage.add(items)
        self._next += 1

    def _finish(self, header: _Header) -> Progress:
        stage = self._stage
        assert stage is not None
        self._header = self._stage = None
        if self._digest.hexdigest() != header.sha256:
            stage.discard()
            logger.warning("snapshot %s failed its hash check; discarded", header.snap)
            return Progress.FAILED
        stage.commit(seq=header.seq, snap_id=header.snap, tx_through=self._tx_through)
        logger.info("snapshot %s applied: now at change seq %d", header.snap, header.seq)
        return Progress.APPLIED

    def abandon(self) -> None:
        """Drop a partial snapshot (superseded, corrupt, or the link is stopping)."""
        if self._stage is not None:
            self._stage.discard()
        self._header = self._stage = None
        self._buffer.clear()
        self._next = 0
