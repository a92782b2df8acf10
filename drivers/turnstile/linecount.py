"""Bad frames from the board, in total and recently.

A total alone cannot tell a link that had one noisy afternoon last year from one that is failing
now, so the recent count is kept too, in coarse buckets (memory stays constant however fast
frames go bad). Clock-free: ``now`` is ``time.monotonic()`` from the caller.
"""

from collections import Counter, deque
from typing import Any

RECENT_S = 300  # the window "recently" means, in seconds
_BUCKET_S = 10.0


class BadFrames:
    """Not thread-safe: the gate calls it under its own lock."""

    def __init__(self) -> None:
        self.total = 0
        self._reasons: Counter[str] = Counter()
        self._buckets: deque[list[float]] = deque()  # [bucket start, count], oldest first

    def add(self, reason: str, now: float) -> None:
        self.total += 1
        self._reasons[reason] += 1
        start = now - now % _BUCKET_S
        if self._buckets and self._buckets[-1][0] == start:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([start, 1])
        self._forget(now)

    def recent(self, now: float) -> int:
        self._forget(now)
        return int(sum(count for _, count in self._buckets))

    def counts(self, now: float) -> dict[str, Any]:
        return {
            "bad_frames": self.total,
            "bad_frames_recent": self.recent(now),
            "recent_s": RECENT_S,
            "bad_frame_reasons": dict(self._reasons.most_common()),
        }

    def _forget(self, now: float) -> None:
        while self._buckets and now - self._buckets[0][0] >= RECENT_S + _BUCKET_S:
            self._buckets.popleft()
