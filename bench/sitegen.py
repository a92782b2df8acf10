"""Deterministic benchmark sites: N holders with cards, groups, windows and a filled journal.

The same seed gives the same database, so runs on different days compare. Generation is cached
in bench/data/ (or $YKT_BENCH_DATA) because a 10,000,000-row journal takes minutes to build.
"""

import random
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from common import DATA_DIR, progress

from models.canonical import ZERO_HASH, canonical_json
from models.journal import TransactionDraft, seal
from models.reasons import Reason
from terminal.store import Store

BENCH_DOOR = "door-0001"
DOORS = [f"door-{n:04d}" for n in range(1, 101)]
GROUPS = 200
CLASSES = ("gold", "red", "red", "red", "blue", "green", "temporary")


@dataclass(frozen=True)
class Scale:
    holders: int
    journal: int
    seed: int = 20261122

    @property
    def path(self) -> Path:
        return DATA_DIR / f"site-h{self.holders}-j{self.journal}-s{self.seed}.db"


def card_number(n: int) -> str:
    return f"3601{n:016d}"


def _status(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.01:
        return "lost"
    if roll < 0.02:
        return "replaced"
    if roll < 0.025:
        return "expired"
    if roll < 0.03:
        return "cancelled"
    return "active"


def _allowlist(conn: sqlite3.Connection, scale: Scale, rng: random.Random) -> None:
    conn.executemany(
        "INSERT INTO access_groups (id, calendar) VALUES (?, 'cn')",
        [(f"g{g:03d}",) for g in range(GROUPS)],
    )
    door_rows, window_rows = [], []
    for g in range(GROUPS):
        doors = set(rng.sample(DOORS, rng.randint(1, 10)))
        if g % 3 == 0:
            doors.add(BENCH_DOOR)
        door_rows += [(d, f"g{g:03d}") for d in sorted(doors)]
        window_rows.append((f"g{g:03d}", 0b111110, 7 * 60, 20 * 60))  # Mon–Fri 07:00–20:00
        window_rows.append((f"g{g:03d}", 0b1000000, 8 * 60, 12 * 60))  # Saturday mornings
    conn.executemany("INSERT INTO group_doors VALUES (?, ?)", door_rows)
    conn.executemany(
        "INSERT INTO group_windows (group_id, days, start_min, end_min) VALUES (?, ?, ?, ?)",
        window_rows,
    )
    conn.executemany(
        "INSERT INTO calendar_days VALUES ('cn', ?, 'holiday')",
        [("2027-01-01",), ("2026-10-01",), ("2026-10-02",)],
    )
    batch = 50_000
    extra_card = scale.holders
    for start in range(0, scale.holders, batch):
        holders, cards, memberships = [], [], []
        for n in range(start, min(start + batch, scale.holders)):
            holder_id = f"H{n:08d}"
            card_class = rng.choice(CLASSES)
            holders.append((holder_id, f"持卡人{n}", card_class))
            status = _status(rng)
            cards.append((card_number(n), holder_id, 1, card_class, status))
            if status == "replaced":
                cards.append((card_number(extra_card), holder_id, 2, card_class, "active"))
                extra_card += 1
            for g in rng.sample(range(GROUPS), rng.randint(1, 3)):
                memberships.append((holder_id, f"g{g:03d}"))
        conn.executemany("INSERT INTO holders (id, name, card_class) VALUES (?, ?, ?)", holders)
        conn.executemany(
            "INSERT INTO cards (number, holder_id, issue_seq, card_class, status) "
            "VALUES (?, ?, ?, ?, ?)",
            cards,
        )
        conn.executemany("INSERT INTO holder_groups VALUES (?, ?)", memberships)
    progress(f"allowlist: {scale.holders:,} holders")


def _journal(conn: sqlite3.Connection, scale: Scale, rng: random.Random) -> None:
    prev = ZERO_HASH
    batch = 100_000
    reasons = (Reason.ALLOWED,) * 8 + (Reason.OUTSIDE_SCHEDULE, Reason.NO_ACCESS)
    started = time.monotonic()
    for start in range(1, scale.journal + 1, batch):
        rows = []
        for seq in range(start, min(start + batch, scale.journal + 1)):
            n = rng.randrange(scale.holders)
            reason = rng.choice(reasons)
            draft = TransactionDraft(
                kind="door",
                at=f"2026-{1 + seq % 11:02d}-{1 + seq % 28:02d}T01:{seq % 60:02d}:00.000Z",
                mono_ns=seq * 1_000_000,
                credential="card",
                decision="allow" if reason is Reason.ALLOWED else "deny",
                reason=reason,
                view_seq=seq // 1000,
                card=card_number(n),
                holder_id=f"H{n:08d}",
                door=rng.choice(DOORS),
                direction="in",
            )
            record = seal(draft, seq=seq, tx_id=f"0190{seq:028x}", prev_hash=prev)
            prev = record["hash"]
            rows.append(
                (
                    seq,
                    record["id"],
                    "door",
                    draft.at,
                    draft.card,
                    draft.holder_id,
                    draft.decision,
                    str(reason),
                    record["prev_hash"],
                    prev,
                    canonical_json(record).decode(),
                )
            )
        conn.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        done = min(start + batch - 1, scale.journal)
        rate = done / max(time.monotonic() - started, 1e-9)
        progress(f"journal: {done:,}/{scale.journal:,} rows ({rate:,.0f}/s)")


def build(scale: Scale) -> tuple[Path, float]:
    """The database for ``scale``, generated if not cached; returns (path, generation seconds)."""
    path = scale.path
    if path.exists():
        return path, 0.0
    started = time.monotonic()
    partial = path.with_suffix(".partial")
    for leftover in partial.parent.glob(partial.name + "*"):
        leftover.unlink()
    Store.open(partial).close()  # migrations only
    conn = sqlite3.connect(partial, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")  # generation only; the benchmark reopens with FULL
    rng = random.Random(scale.seed)
    conn.execute("BEGIN")
    _allowlist(conn, scale, rng)
    _journal(conn, scale, rng)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    partial.rename(path)
    return path, time.monotonic() - started
