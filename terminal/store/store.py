"""The terminal's SQLite store: one writer connection, used under a lock by every writer thread."""

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

from uuid6 import uuid7

from models.canonical import canonical_json
from models.cards import Card
from models.correction import CorrectionView
from models.door import AntiPassback, DoorView, Passage
from models.errors import StoreError
from models.journal import ChainBreak, TransactionDraft
from models.pos import PosPolicy, PosView
from models.rules import RuleSet
from models.wallet import Service
from terminal.store import allowlist, journal, pos, qr
from terminal.store.checkpoint import BACKSTOP_PAGES, Checkpointer
from terminal.store.journal import Committed, SecurityEvent
from terminal.store.schema import connect, damage_marker, quarantine

CHANGE_SEQ = "change_seq"
JOURNAL_EPOCH = "journal_epoch"
logger = logging.getLogger(__name__)


class Store:
    """Allowlist views for decisions, and the durable journal they are recorded in.

    The tap path uses plain prepared statements on this one connection; bulk writers (sync, the
    demo seed, benchmarks) go through :meth:`write` so they serialise with the tap path.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()
        self.damaged: str | None = None  # what an integrity check found, if anything
        self.failures = 0  # taps and payments refused since the store last wrote
        self.failing_since: float | None = None
        self.last_failure = ""
        self.last_failure_at: float | None = None
        self._tip = journal.chain_tip(conn)
        self._tip_at = journal.tip_time(conn)
        self._view_seq = int(self.state(CHANGE_SEQ) or 0)
        # Which journal this is (migration 0008): in every record, so HQ tells journals apart.
        self.epoch = self.state(JOURNAL_EPOCH) or ""
        self._pending_view_seq: int | None = None
        self._rules = RuleSet()
        self._rules_key: object = None
        conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        self._checkpointer = Checkpointer(path)
        self._checkpointer.start()

    @classmethod
    def open(cls, path: Path) -> "Store":
        """Open (creating, migrating) the database; a damaged one is quarantined, never a crash.

        Damage found when the tables are first read (the journal's tip, the state), or by an
        earlier run's integrity check (:meth:`check_integrity`), moves the file aside and starts
        with an empty database under a new journal epoch, which a resync from HQ refills.
        """
        marker = damage_marker(path)
        if marker.exists():
            quarantine(path, f"an integrity check found it damaged: {marker.read_text()[:500]}")
            marker.replace(Path(str(marker) + "-" + time.strftime("%Y%m%dT%H%M%S")))
        conn = connect(path)
        try:
            return cls(conn, path)
        except sqlite3.DatabaseError as exc:
            conn.close()
            quarantine(path, str(exc))
            return cls(connect(path), path)

    def check_integrity(self, limit: int = 20) -> list[str]:
        """SQLite's quick check of every table and index, on a connection of its own (it reads
        the whole file: minutes for a 10,000,000-record journal, so off the tap path). Findings
        leave a marker so that the next start quarantines the file; ``[]`` when all is well."""
        try:
            conn = connect(self.path, readonly=True)
        except StoreError as exc:
            found = [str(exc)]
        else:
            try:
                found = [str(r[0]) for r in conn.execute(f"PRAGMA quick_check({int(limit)})")]
            except sqlite3.DatabaseError as exc:
                found = [str(exc)]
            finally:
                conn.close()
        if found == ["ok"]:
            return []
        self.damaged = "; ".join(found[:3])
        damage_marker(self.path).write_text("\n".join(found))
        logger.error("database %s is damaged: %s", self.path, self.damaged)
        return found

    def close(self) -> None:
        self._checkpointer.stop()
        with self._lock:
            try:
                # Statistics for the query planner, as SQLite recommends at close; then fold the
                # WAL back so the next start reads one file.
                self._conn.execute("PRAGMA optimize")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                # A full disk, most often: every commit is already durable in the WAL, which
                # the next start checkpoints. A stop is no failure and no traceback.
                logger.error("database %s closed without its final checkpoint: %s", self.path, exc)
            finally:
                self._conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction; committed (and fsync'd) on exit, rolled back on error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._pending_view_seq = None
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back after some errors (a full disk): a second
                # ROLLBACK would hide the real cause behind "no transaction is active", and a
                # COMMIT that failed leaves one open that would refuse every later BEGIN.
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                self._pending_view_seq = None
                raise
            self._apply_pending_view_seq()

    def _apply_pending_view_seq(self) -> None:
        if self._pending_view_seq is not None:
            self._view_seq, self._pending_view_seq = self._pending_view_seq, None

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read on the writer connection (cheap: no second connection to keep)."""
        with self._lock:
            yield self._conn

    @property
    def view_seq(self) -> int:
        """The change-log position the allowlist reflects; recorded with every decision."""
        return self._view_seq

    def door_view(
        self, number: str, door_id: str, today: date, anti_passback: AntiPassback | None = None
    ) -> DoorView:
        with self._lock:
            view = allowlist.load_door_view(self._conn, number, door_id, today, self._view_seq)
            if view.card is None:
                return view
            return self._with_passback(view, anti_passback, (view.card.number,))

    def door_view_for_holder(
        self, holder_id: str, door_id: str, today: date, anti_passback: AntiPassback | None = None
    ) -> DoorView:
        """The view for a recognised face: the holder's current card stands in for a card, so
        its status, validity and last passage count exactly as if it had been tapped."""
        with self._lock:
            view = allowlist.load_door_view_for_holder(
                self._conn, holder_id, door_id, today, self._view_seq
            )
            return self._with_passback(view, anti_passback, pos.usage_keys(view.card, holder_id))

    def _with_passback(
        self, view: DoorView, anti_passback: AntiPassback | None, keys: Sequence[str]
    ) -> DoorView:
        if anti_passback is None or anti_passback.mode == "off":
            return view
        last = pos.last_passage(self._conn, keys)
        return replace(
            view,
            anti_passback=anti_passback,
            last_passage=None if last is None else Passage(*last),
        )

    def current_card(self, holder_id: str) -> Card | None:
        """The holder's newest card: what a face stands for at a door or a till."""
        with self._lock:
            return allowlist.current_card(self._conn, holder_id)

    def qr_keys(self, holder_id: str) -> dict[str, str]:
        """The holder's electronic-card public keys as HQ last listed them (key id -> base64)."""
        with self._lock:
            return qr.qr_keys(self._conn, holder_id)

    def qr_nonce_seen(self, holder_id: str, nonce: str) -> bool:
        """Whether a code of the holder's with this nonce was accepted here (and not expired)."""
        with self._lock:
            return qr.nonce_seen(self._conn, holder_id, nonce)

    def rules(self) -> RuleSet:
        """The parsed rules, re-read only when the rules table changed."""
        with self._lock:
            key = self._conn.execute(
                "SELECT count(*), max(change_seq), total(length(body)), max(id) FROM rules"
            ).fetchone()
            if key != self._rules_key:
                self._rules, errors = pos.load_rules(self._conn)
                self._rules_key = key
                for error in errors:
                    logger.error("ignoring %s", error)
            return self._rules

    def pos_view(
        self,
        number: str,
        *,
        merchant_id: str,
        service: Service,
        policy: PosPolicy,
        now: datetime,
        degraded: bool,
    ) -> PosView:
        rules = self.rules()
        with self._lock:
            till = pos.Till(
                rules.merchant(merchant_id, service), rules, policy, now, self._view_seq, degraded
            )
            return pos.load_pos_view(self._conn, number, till)

    def pos_view_for_holder(
        self,
        holder_id: str,
        *,
        merchant_id: str,
        service: Service,
        policy: PosPolicy,
        now: datetime,
        degraded: bool,
    ) -> PosView:
        """The payment view for a recognised face: the holder's account, and their newest card
        (if any), whose standing the rules weigh."""
        rules = self.rules()
        with self._lock:
            till = pos.Till(
                rules.merchant(merchant_id, service), rules, policy, now, self._view_seq, degraded
            )
            return pos.load_pos_view_for_holder(self._conn, holder_id, till)

    def correction_view(
        self, supervisor_number: str, tx_id: str, *, merchant_id: str, service: Service
    ) -> CorrectionView:
        rules = self.rules()
        with self._lock:
            return pos.load_correction_view(
                self._conn,
                supervisor_number,
                tx_id,
                merchant_id=merchant_id,
                service=service,
                rules=rules,
                view_seq=self._view_seq,
            )

    def commit(
        self,
        draft: TransactionDraft,
        event: SecurityEvent | None = None,
        effects: Sequence[pos.Effect] = (),
    ) -> Committed:
        """Append ``draft`` to the journal and queue it for upload; durable when this returns.

        ``effects`` (pending debits, usage, PIN state, refunds) land in the same transaction.
        """
        committed_at = journal.parse_time(draft.at)
        with self._lock:
            seq, prev_hash = self._tip
            try:
                with self.write() as conn:
                    committed = journal.append(
                        conn,
                        draft,
                        seq=seq + 1,
                        tx_id=str(uuid7()),
                        prev_hash=prev_hash,
                        event=event,
                        epoch=self.epoch,
                    )
                    pos.apply_effects(conn, effects, committed)
            except sqlite3.Error as exc:
                # What diag reports as the store-failure state (a full disk, most often):
                # how many decisions could not be recorded, so were refused, since when.
                # A passage record is the outcome of a tap already admitted, not a tap refused.
                if draft.kind != "passage":
                    self.failures += 1
                self.last_failure_at = time.time()
                self.failing_since = self.failing_since or self.last_failure_at
                self.last_failure = str(exc)
                raise StoreError(f"could not record the transaction: {exc}") from exc
            self.failures, self.failing_since = 0, None
            self._tip = (committed.seq, committed.hash)
            self._tip_at = max(self._tip_at or committed_at, committed_at)
            return committed

    def journal_tip_at(self) -> datetime | None:
        """The latest time stamped on a journal record: a clock behind it was set back."""
        return self._tip_at

    def add_salvaged(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Queue records read back from a quarantined file for HQ; returns how many are new."""
        try:
            with self.write() as conn:
                before = conn.total_changes
                conn.executemany(
                    "INSERT OR IGNORE INTO salvaged (epoch, seq, record) VALUES (?, ?, ?)",
                    [
                        (str(r.get("epoch", "")), int(r["seq"]), canonical_json(r).decode())
                        for r in records
                    ],
                )
                return conn.total_changes - before
        except sqlite3.Error as exc:
            raise StoreError(f"could not keep the salvaged records: {exc}") from exc

    def record_event(self, event: SecurityEvent, *, at: str, door: str | None) -> int:
        try:
            with self.write() as conn:
                return journal.add_event(conn, event, at=at, door=door)
        except sqlite3.Error as exc:
            raise StoreError(f"could not record the {event.type} event: {exc}") from exc

    def last_payment_id(self) -> str | None:
        """The newest allowed payment at this terminal (what "correct last" refers to)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id FROM journal WHERE decision = 'allow' AND kind IN ('meal', 'shop', "
                "'barber') ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return None if row is None else str(row[0])

    def last_payment(self) -> dict[str, Any] | None:
        """The newest allowed payment's record, as journalled."""
        payment_id = self.last_payment_id()
        if payment_id is None:
            return None
        with self._lock:
            row = self._conn.execute(
                "SELECT record FROM journal WHERE id = ?", (payment_id,)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def awaiting_passages(self) -> list[dict[str, Any]]:
        """Admissions that opened the gate and have no passage record (a crash cut them short)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT j.record FROM awaiting_passage AS a JOIN journal AS j ON j.seq = a.seq "
                "ORDER BY a.seq"
            ).fetchall()
        return [dict(json.loads(text)) for (text,) in rows]

    def records(self, from_seq: int = 1) -> list[dict[str, Any]]:
        with self._lock:
            return list(journal.records(self._conn, from_seq))

    def verify_journal(self) -> ChainBreak | None:
        with self._lock:
            return journal.verify(self._conn)

    def state(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM sync_state WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def put_state(self, key: str, value: str) -> None:
        """Set one terminal setting that must survive a restart (the door mode), on its own."""
        with self._lock:
            try:
                with self.write() as conn:
                    self.set_state(conn, key, value)
            except sqlite3.Error as exc:
                raise StoreError(f"could not record {key}: {exc}") from exc

    def set_state(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        """Set a high-water mark inside the caller's write transaction."""
        conn.execute(
            "INSERT INTO sync_state (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
        if key == CHANGE_SEQ:
            self._pending_view_seq = int(value)

    def counts(self) -> dict[str, int]:
        tables = ("holders", "cards", "access_groups", "journal", "outbox", "events")
        with self._lock:
            return {
                t: int(self._conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
                for t in tables
            }
