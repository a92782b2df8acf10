"""``ykt hq serve``: the HQ loop of the reference tool.

Publishes new changes (deny entries first) and a retained, signed ``head``; answers ``resync``
with the missing changes or, for a new or far-behind terminal, a chunked snapshot; stores
``tx``/``event``/``status``/``reply`` and answers ``txack``. Inbound messages are acknowledged to
the broker only after HQ's database has committed them, and HQ keeps a persistent session, so a
killed HQ loses nothing: the broker (and the terminals' resends) deliver again on restart.
"""

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from devtools.hq import intake
from devtools.hq.db import HqDb
from devtools.hq.office import denies_in
from models.timefmt import rfc3339
from sync.changes import bad
from sync.envelope import Envelope, Rejected, open_envelope, public_key_from_b64
from sync.link import Inbound, LinkOptions, MqttLink
from sync.settings import TlsFiles
from sync.snapshot import build_chunks, chunk_bodies
from sync.topics import Topics

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: TlsFiles | None = None
    username: str | None = None
    password: str | None = None
    mqtt_version: str = "5"
    head_ttl: int = 300  # how long a head stays valid: terminals degrade after this without HQ
    batch_changes: int = 500
    snapshot_after: int = 2000  # a terminal this far behind gets a snapshot, not deltas
    snapshot_chunk_bytes: int = 384 * 1024
    share_group: str | None = None
    client_id: str | None = None


class HqServer:
    def __init__(self, db: HqDb, options: ServeOptions) -> None:
        self.db = db
        self.options = options
        self.signer = db.signer()
        self.topics = Topics(db.prefix, db.site)
        self.link = MqttLink(
            LinkOptions(
                client_id=options.client_id or f"hq-{db.site}",
                host=options.host,
                port=options.port,
                subscriptions=tuple(self.topics.hq_subscriptions(options.share_group)),
                mqtt_version=options.mqtt_version,
                tls=options.tls,
                username=options.username,
                password=options.password,
                receive_maximum=256,
            )
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="hq-serve", daemon=True)
        self._keys: dict[str, tuple[str, Ed25519PublicKey]] = {}
        self._head_at = 0.0
        self._keyset_version: str | None = None  # published in this connection
        self._snapshot_at: dict[str, float] = {}
        self.rejected = 0

    def start(self) -> None:
        self.link.start()
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.link.stop()

    def run(self) -> None:
        """Serve until :meth:`stop` (or forever, when called directly from ``ykt hq serve``)."""
        last = 0.0
        while not self._stop.is_set():
            try:
                item = self.link.inbound.get(timeout=0.05)
            except queue.Empty:
                item = None
            try:
                if item is not None and not item.event:
                    self._handle(item)
                    self.link.ack(item)
                elif item is not None and item.event == "connected":
                    self._head_at = 0.0
                    self._keyset_version = None
                now = time.monotonic()
                if self.link.connected.is_set() and now - last >= 0.05:
                    last = now
                    self.publish_pending()
            except Exception:
                logger.exception("HQ step failed; reconnecting to get it redelivered")
                self.link.drop_connection()
                self._stop.wait(1.0)

    # -- outbound ---------------------------------------------------------------------------

    def _publish(self, topic: str, msg_type: str, body: Mapping[str, Any], **kw: Any) -> None:
        self.link.publish(topic, self.signer.seal(msg_type, self.db.site, body, **kw), False)

    def publish_head(self) -> None:
        now = datetime.now(UTC)
        body = {
            "seq": self.db.head_seq(),
            "issued": rfc3339(now),
            "expires": rfc3339(now + timedelta(seconds=self.options.head_ttl)),
        }
        payload = self.signer.seal("head", self.db.site, body)
        self.link.publish(self.topics.head, payload, True)
        self._head_at = time.monotonic()

    def publish_keyset(self) -> None:
        """The keyset, retained, on every connect (a broker restarted without persistence has
        lost it) and when ``ykt hq keys`` changed it; then sign with the key it names now."""
        version = self.db.meta("keyset_version")
        if version == self._keyset_version:
            return
        payload = self.db.meta("keyset")
        if payload is not None:
            self.link.publish(self.topics.keys, payload.encode(), True)
        self.signer = self.db.signer()
        if self._keyset_version is not None:
            logger.info("keyset %s published; signing with %s", version, self.signer.kid)
            self._head_at = 0.0  # a head signed by the new key tells who missed what
        self._keyset_version = version

    def publish_pending(self) -> None:
        """New changes since the last publish (denies first), then the head when due."""
        self.publish_keyset()
        published = int(self.db.meta("published_seq") or 0)
        moved = False
        for _ in range(20):  # bounded per step, so inbound messages are not starved
            self._publish_denies(published)  # checked before every batch: they cut in line
            entries = self.db.changes_after(published, self.options.batch_changes)
            if not entries:
                break
            self._publish_batch(entries)
            published = int(entries[-1]["seq"])
            with self.db.tx() as conn:
                self.db.set_meta(conn, "published_seq", str(published))
            moved = True
        if moved or time.monotonic() - self._head_at > self.options.head_ttl / 3:
            self.publish_head()

    def _publish_denies(self, published: int) -> None:
        """Every card voided since the last publish, before the (maybe long) queue of batches:
        a lost card must not wait behind a backlog of ledger changes."""
        after = max(published, int(self.db.meta("deny_published_seq") or 0))
        entries = self.db.changes_after(after, 10_000, kind="card.upsert")
        for entry in entries:
            deny = denies_in(entry)
            if deny is not None:
                self._publish(self.topics.deny, "deny", deny)
        if entries:
            with self.db.tx() as conn:
                self.db.set_meta(conn, "deny_published_seq", str(entries[-1]["seq"]))

    def _publish_batch(self, entries: list[dict[str, Any]]) -> None:
        body = {"from": entries[0]["seq"], "to": entries[-1]["seq"], "changes": entries}
        self._publish(self.topics.changes, "changes", body)

    def answer_resync(self, tid: str, have: int) -> str:
        head = self.db.head_seq()
        if have >= head:
            self.publish_head()
            return "current"
        if have == 0 or head - have > self.options.snapshot_after:
            self.send_snapshot(tid)
            return "snapshot"
        after = have
        while after < head:
            entries = self.db.changes_after(after, self.options.batch_changes)
            if not entries:
                break
            self._publish_batch(entries)
            after = int(entries[-1]["seq"])
        return "changes"

    def send_snapshot(self, tid: str) -> None:
        now = time.monotonic()
        if now - self._snapshot_at.get(tid, -1e9) < 10:
            logger.info("snapshot for %s sent moments ago; not again yet", tid)
            return
        self._snapshot_at[tid] = now
        seq, lines = self.db.snapshot_lines(tid)
        chunks = build_chunks(lines, self.options.snapshot_chunk_bytes)
        snap_id = f"{self.db.site}-{seq}-{int(time.time())}"
        topic = self.topics.terminal_topic("snapshot", tid)
        for body in chunk_bodies(chunks, snap_id=snap_id, seq=seq):
            self._publish(topic, "snapshot", body, tid=tid)
        logger.info(
            "snapshot %s for %s: %d lines, %d chunks", snap_id, tid, chunks.lines, len(chunks.raw)
        )

    # -- inbound ----------------------------------------------------------------------------

    def _key(self, tid: str, kid: str) -> Ed25519PublicKey | None:
        known = self._keys.get(tid)
        if known is None or known[0] != kid:
            row = self.db.conn.execute(
                "SELECT kid, pub FROM terminals WHERE tid = ?", (tid,)
            ).fetchone()
            if row is None:
                return None
            known = (str(row[0]), public_key_from_b64(str(row[1])))
            self._keys[tid] = known
        return known[1] if known[0] == kid else None

    def _open(self, tid: str, name: str, payload: bytes) -> Envelope:
        return open_envelope(
            payload,
            lambda kid: self._key(tid, kid),
            site=self.db.site,
            tid=tid,
            require_tid=True,
            types=frozenset({name}),
        )

    def _handle(self, item: Inbound) -> None:
        where = self.topics.split(item.topic)
        if where is None or where[0] is None:
            return
        tid: str = where[0]
        name = where[1]
        try:
            envelope = self._open(tid, name, item.payload)
            body = envelope.body
            if name == "tx":
                records = body.get("records")
                if not isinstance(records, list):
                    raise bad("tx.records: a list")
                if body.get("salvaged") is True:
                    new, old_epoch, seqs = intake.ingest_salvaged(self.db, tid, records)
                    through, epoch = intake.acked_through(self.db, tid)
                    salvaged = {"epoch": old_epoch, "seqs": seqs}
                    ack = {"through": through, "epoch": epoch, "salvaged": salvaged}
                else:
                    new, through, epoch = intake.ingest_tx(self.db, tid, records)
                    ack = {"through": through, "epoch": epoch}
                self._publish(self.topics.terminal_topic("txack", tid), "txack", ack, tid=tid)
                logger.debug("tx from %s: %d new, acked through %d", tid, new, through)
            elif name == "event":
                event_id = intake.ingest_event(self.db, tid, body)
                through, epoch = intake.acked_through(self.db, tid)
                ack = {"through": through, "epoch": epoch, "events": [event_id]}
                self._publish(self.topics.terminal_topic("txack", tid), "txack", ack, tid=tid)
            elif name == "resync":
                have = body.get("have")
                if not isinstance(have, int) or isinstance(have, bool) or have < 0:
                    raise bad("resync.have: a seq")
                logger.info(
                    "terminal %s resyncs from %d: %s", tid, have, self.answer_resync(tid, have)
                )
            elif name == "status":
                intake.store_status(self.db, tid, body)
            elif name == "reply":
                intake.store_reply(self.db, tid, body)
        except Rejected as exc:
            self.rejected += 1
            logger.warning("rejected %s from %s: %s", name, tid, exc)
        except sqlite3.Error:
            raise  # HQ's own database failed: the message is delivered again once it is back
        except Exception:
            # Any other failure is the message's (a case no check foresaw): counted and
            # acknowledged like a rejection, so one bad message cannot stop the intake.
            self.rejected += 1
            logger.exception("could not take %s from %s; counted as rejected", name, tid)
