"""WAL checkpoints off the tap path.

SQLite's automatic checkpoint runs inside whichever commit crosses the threshold, so every few
hundred taps one person would wait for a thousand pages to be copied and the database fsync'd
(measured: p99 of decide+commit 9 ms instead of about 1 ms at a million holders). A thread with
its own connection checkpoints passively instead; passive checkpoints never block the writer.
The writer keeps a much larger automatic threshold as a backstop should this thread stall.
"""

import logging
import sqlite3
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

BACKSTOP_PAGES = 20_000  # ~80 MB of WAL before the writer checkpoints by itself


class Checkpointer:
    def __init__(self, path: Path, interval: float = 0.5) -> None:
        self._path = path
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 1000")
        failures = 0
        try:
            while not self._stop.wait(self._interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    failures = 0
                except sqlite3.Error as exc:
                    failures += 1
                    if failures == 1:  # once per run of failures, not twice a second
                        logger.warning("background WAL checkpoint failed: %s", exc)
        finally:
            conn.close()
