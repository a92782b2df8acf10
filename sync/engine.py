"""What the terminal does with each message from HQ, and what it sends back.

The engine has no network and no threads: the link hands it ``(topic, payload)`` and a publish
function, so every rule of PROTOCOL.md (verification, order, gaps, deny priority, freshness,
commands at most once) is tested here without a broker. A call returns only after its effect is
committed, so the caller may acknowledge the MQTT message right after; a store failure raises,
and the message is then left unacknowledged for the broker to deliver again.
"""

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from models.errors import StoreError
from models.timefmt import rfc3339
from sync.changes import bad, integer, parse_batch, parse_deny, req_text
from sync.envelope import (
    Envelope,
    Rejected,
    Rejection,
    Signer,
    open_envelope,
    parse_rfc3339,
    public_key_from_b64,
)
from sync.keyset import Keyring, open_keyset
from sync.outbox import OutboxDrain, Publish
from sync.port import BatchOutcome, Head, SyncPort
from sync.settings import SyncSettings
from sync.snapshot import Progress, SnapshotAssembler
from sync.topics import HQ_TO_TERMINAL, KEYSET_TOPIC, SITE_TOPICS, Topics

logger = logging.getLogger(__name__)

ENGINE_COMMANDS = frozenset({"resync", "status"})
# A command is an instruction for now (open the door, resync): one valid for longer is one that
# could be captured and replayed much later. HQ's tool gives 60 s by default.
MAX_COMMAND_TTL_S = 3600
COMMAND_CLOCK_SKEW_S = 300  # the terminal's clock and HQ's may disagree by this much
_NOT_YET = "not yet"  # nothing published about degraded mode in this run
_WHY = {
    "no_head": "no head from HQ yet",
    "head_expired": "HQ's head has expired",
    "far_behind": "far behind HQ's head",
}
TERMINAL_COMMANDS = frozenset({"open", "diag_bundle", "reload_config", "set_mode"})
_LOUD_REJECTIONS = 10  # per reason, then one line per 1000


class CommandRefused(Exception):  # noqa: N818 - it is an answer, not a failure
    """Raised by a command handler to answer ``ok: false`` with a reason."""


class CommandHandler(Protocol):
    """The terminal's side of ``open``, ``diag_bundle``, ``reload_config`` and ``set_mode``."""

    def __call__(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]: ...


def refuse_all(name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
    raise CommandRefused(f"{name} is not available on this terminal")


class SyncEngine:
    def __init__(
        self,
        settings: SyncSettings,
        port: SyncPort,
        signer: Signer,
        *,
        commands: CommandHandler = refuse_all,
        health: Callable[[], Mapping[str, str]] = dict,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.prefix, settings.site, settings.tid)
        self._port = port
        self._signer = signer
        self._commands = commands
        self._health = health
        self._clock = clock
        self._mono = monotonic
        root = public_key_from_b64(settings.hq_root_key) if settings.hq_root_key else None
        self.keyring = Keyring(settings.hq_keys, root, clock=clock)
        self._load_keyset()
        self.snapshots = SnapshotAssembler(port)
        self.outbox = OutboxDrain(port, signer, self.topics, settings)
        self.rejected: Counter[str] = Counter()
        self.applied_batches = 0
        self.resyncs = 0
        self.boot_id = os.urandom(8).hex()
        self._started = monotonic()
        self._connected = False
        self._fresh_connection = False
        self._behind_since: float | None = None
        self._resync_at: float | None = None
        self._last_chunk_at = 0.0
        self._status_at: float | None = None
        self._last_degraded: str | None = _NOT_YET  # degraded_why() last published
        # The accepted head and the applied seq, cached: degraded() is asked on the tap path of
        # every payment.
        marks = port.marks()
        self._head = marks.head
        self._change_seq = marks.change_seq
        # When it was accepted, on the monotonic clock: None for one read back at start.
        self._head_mono: float | None = None

    # -- inbound -----------------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, publish: Publish) -> None:
        """Verify and apply one inbound message. Rejections are counted, never raised."""
        where = self.topics.split(topic)
        if where is None or (where[0] is not None and where[0] != self.settings.tid):
            self._reject(Rejected(Rejection.WRONG_TERMINAL, topic), topic)
            return
        expected = SITE_TOPICS.get(where[1]) or HQ_TO_TERMINAL.get(where[1])
        try:
            if where[1] == KEYSET_TOPIC:
                self._on_keyset(payload, publish)
                return
            envelope = open_envelope(
                payload,
                self.keyring,
                site=self.settings.site,
                tid=self.settings.tid,
                types=frozenset({expected}) if expected else frozenset(),
                max_bytes=self.settings.max_message_bytes,
                # A message on this terminal's own topic says it is for this terminal, signed.
                require_tid=where[0] is not None,
            )
            handler = getattr(self, f"_on_{envelope.type}")
            handler(envelope, publish)
        except Rejected as exc:
            self._reject(exc, topic)
        except StoreError:
            raise  # the terminal's own store failed: the link has the message delivered again
        except Exception as exc:
            # Any other failure is the message's (a case no check foresaw): counted and
            # acknowledged like a rejection, never redelivered for ever as a poison message.
            logger.exception("could not apply a message on %s", topic)
            self._reject(Rejected(Rejection.BAD_BODY, f"{type(exc).__name__}: {exc}"[:200]), topic)

    def _reject(self, exc: Rejected, topic: str) -> None:
        self.rejected[exc.reason] += 1
        count = self.rejected[exc.reason]
        if count <= _LOUD_REJECTIONS or count % 1000 == 0:
            logger.warning(
                "rejected a message on %s: %s (%s rejected for this reason so far)",
                topic,
                exc,
                count,
            )

    def _on_head(self, envelope: Envelope, publish: Publish) -> None:
        body = envelope.body
        head = Head(
            integer(body, "seq", minimum=0), req_text(body, "issued"), req_text(body, "expires")
        )
        if parse_rfc3339(head.expires, "expires") <= parse_rfc3339(head.issued, "issued"):
            raise bad("head expires before it was issued")
        if not self._port.accept_head(head):
            raise Rejected(Rejection.STALE, f"head seq {head.seq} issued {head.issued}")
        self._head = head
        self._head_mono = self._mono()
        self.outbox.hq_seen(self._head_mono)
        have = self._port.marks().change_seq
        if head.seq < have:
            # HQ's log is behind what we applied (restored from a backup?): its new entries
            # would look like duplicates here. Loud, because only people can sort that out.
            logger.error("HQ's head is at %d but this terminal applied up to %d", head.seq, have)
        self._check_behind(head.seq, publish, immediately=self._fresh_connection)
        self._fresh_connection = False
        self._status_if_degraded_changed(publish)

    def _on_changes(self, envelope: Envelope, publish: Publish) -> None:
        batch = parse_batch(envelope.body)
        outcome = self._port.apply_batch(batch.first, batch.last, batch.changes)
        if outcome is BatchOutcome.GAP:
            have = self._port.marks().change_seq
            logger.info("change batch %d..%d leaves a gap after %d", batch.first, batch.last, have)
            self._resync(publish, force=False)
            return
        if outcome is BatchOutcome.APPLIED:
            self.applied_batches += 1
            self._progress(publish)

    def _on_deny(self, envelope: Envelope, publish: Publish) -> None:
        seq, entries = parse_deny(envelope.body)
        changed = self._port.apply_deny(seq, entries)
        logger.info("deny seq %d: %d of %d cards changed", seq, changed, len(entries))

    def _on_snapshot(self, envelope: Envelope, publish: Publish) -> None:
        self._last_chunk_at = self._mono()
        applied = self._port.marks().change_seq
        if self._port.snapshot_wanted():
            applied -= 1  # a snapshot at the seq we have still brings what we dropped
        result = self.snapshots.offer(envelope.body, applied)
        if result is Progress.APPLIED:
            self._progress(publish)
            self.publish_status(publish)
        elif result is Progress.FAILED:
            self._resync(publish, force=True)

    def _load_keyset(self) -> None:
        stored = self._port.keyset()
        if stored is None or self.keyring.root is None:
            return
        try:
            self.keyring.adopt(open_keyset(stored, self.keyring.root, site=self.settings.site))
        except Rejected as exc:
            # Only a root key changed in the config can do this: the config's keys apply.
            logger.error("the stored HQ keyset no longer verifies (%s); using hq_keys", exc)

    def _on_keyset(self, payload: bytes, publish: Publish) -> None:
        root = self.keyring.root
        if root is None:
            raise Rejected(Rejection.UNKNOWN_KID, "keyset: no hq_root_key in this config")
        keyset = open_keyset(payload, root, site=self.settings.site)
        if keyset.version == self.keyring.version:
            return  # HQ publishes the same set again after each start: nothing new
        if keyset.version < self.keyring.version:
            raise Rejected(Rejection.STALE, f"keyset version {keyset.version}")
        self._port.save_keyset(keyset.payload, keyset.version)
        self.keyring.adopt(keyset)
        logger.info("HQ keys now %s (keyset %d)", ", ".join(self.keyring.kids()), keyset.version)
        if self._connected:
            # Messages signed by a key we learn only now were refused: ask for what we missed.
            self._resync(publish, force=False)

    def _on_txack(self, envelope: Envelope, publish: Publish) -> None:
        if self.outbox.on_txack(envelope.body) and self._connected:
            # Refill the window at once rather than at the next timer tick.
            self.outbox.tick(self._mono(), self._clock(), publish)

    def _on_cmd(self, envelope: Envelope, publish: Publish) -> None:
        body = envelope.body
        name = req_text(body, "name")
        args = body.get("args", {})
        if not isinstance(args, dict):
            raise bad("cmd.args: an object")
        expires = parse_rfc3339(req_text(body, "expires"), "expires")
        now = self._clock()
        reply: dict[str, Any] = {"cmd": envelope.id, "name": name}
        if now > expires:
            self._reply(publish, reply | {"ok": False, "error": "expired"})
            raise Rejected(Rejection.EXPIRED, f"command {name} {envelope.id}")
        issued = parse_rfc3339(envelope.ts, "ts")
        longest = timedelta(seconds=MAX_COMMAND_TTL_S + COMMAND_CLOCK_SKEW_S)
        if expires - now > longest or expires - issued > longest:
            self._reply(publish, reply | {"ok": False, "error": "expires too far ahead"})
            raise Rejected(Rejection.BAD_FIELD, f"command {name} valid beyond the cap")
        if not self._port.claim_command(envelope.id, name, rfc3339(now)):
            self._reply(publish, reply | {"ok": False, "error": "duplicate"})
            raise Rejected(Rejection.STALE, f"command {envelope.id} already executed")
        try:
            result = self._run_command(name, args, publish)
        except CommandRefused as exc:
            outcome = {"ok": False, "error": str(exc)}
        except Exception as exc:
            logger.exception("command %s failed", name)
            outcome = {"ok": False, "error": f"failed: {type(exc).__name__}"}
        else:
            outcome = {"ok": True, "result": dict(result)}
        self._port.finish_command(envelope.id, "ok" if outcome["ok"] else str(outcome["error"]))
        self._reply(publish, reply | outcome)

    def _run_command(
        self, name: str, args: Mapping[str, Any], publish: Publish
    ) -> Mapping[str, Any]:
        if name == "resync":
            self._resync(publish, force=True)
            return {"have": self._port.marks().change_seq}
        if name == "status":
            return self.status_body()
        if name in TERMINAL_COMMANDS:
            return self._commands(name, args)
        raise CommandRefused(f"unknown command {name!r}")

    def _reply(self, publish: Publish, body: Mapping[str, Any]) -> None:
        payload = self._signer.seal("reply", self.topics.site, body, tid=self.topics.tid)
        publish(self.topics.terminal_topic("reply"), payload, False)

    # -- catching up -------------------------------------------------------------------------

    def _progress(self, publish: Publish) -> None:
        """The applied seq moved: if still behind the head, give HQ time before asking again."""
        marks = self._port.marks()
        self._change_seq = marks.change_seq
        head_seq = marks.head.seq if marks.head else 0
        self._behind_since = self._mono() if head_seq > marks.change_seq else None
        self._resync_at = None

    def _check_behind(self, head_seq: int, publish: Publish, *, immediately: bool) -> None:
        have = self._change_seq = self._port.marks().change_seq
        if self._port.snapshot_wanted():
            if not self.snapshots.in_progress:
                self._resync(publish, force=immediately)
            return
        if head_seq <= have:
            self._behind_since = None
            return
        if immediately:
            self._resync(publish, force=True)
        elif self._behind_since is None:
            self._behind_since = self._mono()

    def _resync(self, publish: Publish, *, force: bool) -> None:
        now = self._mono()
        recent = self._resync_at is not None and now - self._resync_at < self.settings.resync_after
        if recent and not force:
            return
        # HQ answers have = 0 with a whole snapshot: what an earlier configuration dropped.
        have = 0 if self._port.snapshot_wanted() else self._port.marks().change_seq
        payload = self._signer.seal("resync", self.topics.site, {"have": have}, tid=self.topics.tid)
        publish(self.topics.terminal_topic("resync"), payload, False)
        self._resync_at = now
        self._behind_since = now
        self.resyncs += 1
        logger.info("asked HQ for the changes after %d", have)

    def resync_now(self, publish: Publish) -> None:
        """A technician's or a command's "resync": ask HQ now, whatever the timers say."""
        self._resync(publish, force=True)

    def upload_now(self) -> None:
        """Send every unacknowledged record again on the next tick."""
        self.outbox.reset()

    # -- link events and timers ----------------------------------------------------------------

    def on_connected(self, publish: Publish) -> None:
        self._connected = True
        self._fresh_connection = True  # the retained head arrives next: compare at once
        self.outbox.reset()
        self.publish_status(publish)

    def on_disconnected(self) -> None:
        self._connected = False

    def tick(self, publish: Publish) -> None:
        """Timers: outbox drain, resync when stuck behind, periodic and changed status."""
        if not self._connected:
            return
        mono = self._mono()
        self.outbox.tick(mono, self._clock(), publish)
        settings = self.settings
        if self.snapshots.in_progress and mono - self._last_chunk_at > 3 * settings.resync_after:
            logger.warning("snapshot %s stalled; asking again", self.snapshots.in_progress)
            self.snapshots.abandon()
            self._resync(publish, force=True)
        elif (
            self._behind_since is not None
            and not self.snapshots.in_progress
            and mono - self._behind_since >= settings.resync_after
        ):
            self._resync(publish, force=False)
        if self._status_at is None or mono - self._status_at >= settings.status_interval:
            self.publish_status(publish)
        self._status_if_degraded_changed(publish)

    def degraded(self) -> bool:
        """HQ's promise has run out (or never came), or this terminal is far behind what HQ
        says it has: money is held to the offline caps."""
        return self.degraded_why() is not None

    def degraded_why(self) -> str | None:
        """``no_head``, ``head_expired`` or ``far_behind``; None when not degraded."""
        head = self._head
        if head is None:
            return "no_head"
        if head.seq - self._change_seq > self.settings.degraded_behind:
            return "far_behind"
        return "head_expired" if self._head_expired(head) else None

    def _head_expired(self, head: Head) -> bool:
        issued = parse_rfc3339(head.issued, "issued")
        expires = min(
            parse_rfc3339(head.expires, "expires"),
            issued + timedelta(seconds=self.settings.head_max_validity),
        )
        if self._clock() >= expires:
            return True
        # The wall clock can be set back (NTP, an operator, a bad RTC): the head also expires
        # its validity after it was received, by the monotonic clock, whichever comes first.
        received = self._head_mono
        return (
            received is not None and self._mono() - received >= (expires - issued).total_seconds()
        )

    def clock_offset_s(self) -> float | None:
        """How far the wall clock stands from HQ's, judged by the head received in this run.

        HQ issued the head when it sent it; the monotonic time since it arrived carries that
        moment forward, so a clock stepped since then shows as an offset. None before the first
        head of this run or once that head has outlived its validity.
        """
        head, received = self._head, self._head_mono
        if head is None or received is None:
            return None
        issued = parse_rfc3339(head.issued, "issued")
        validity = min(
            parse_rfc3339(head.expires, "expires") - issued,
            timedelta(seconds=self.settings.head_max_validity),
        )
        elapsed = self._mono() - received
        if elapsed >= validity.total_seconds():
            return None
        return (self._clock() - (issued + timedelta(seconds=elapsed))).total_seconds()

    def _status_if_degraded_changed(self, publish: Publish) -> None:
        why = self.degraded_why()
        if why != self._last_degraded:
            if why is not None and self._last_degraded is not _NOT_YET:
                logger.warning("degraded mode (%s): money held to the offline caps", _WHY[why])
            elif self._last_degraded not in (None, _NOT_YET):
                logger.info("degraded mode over: up to date with a fresh head from HQ")
            self._last_degraded = why
            if self._connected:
                self.publish_status(publish)

    def status_body(self, *, online: bool = True) -> dict[str, Any]:
        marks = self._port.marks()
        stats = self._port.outbox_stats()
        oldest_age = None
        if stats.oldest_queued_at:
            try:
                queued = parse_rfc3339(stats.oldest_queued_at, "queued_at")
                oldest_age = max(0, int((self._clock() - queued).total_seconds()))
            except Rejected:
                oldest_age = None
        body: dict[str, Any] = {
            "online": online,
            "version": self.settings.software_version,
            "boot_id": self.boot_id,
            "change_seq": marks.change_seq,
            "head_seq": marks.head.seq if marks.head else None,
            "snapshot_id": marks.snapshot_id,
            "last_tx_seq": stats.last_tx_seq,
            "last_tx_hash": stats.last_tx_hash,
            "tx_acked": marks.tx_acked,
            "journal_epoch": marks.journal_epoch,
            # The journal started again after these were set aside: HQ should raise the alarm.
            "quarantined": self._port.quarantined(),
            "outbox_backlog": stats.tx_backlog + stats.event_backlog,
            "outbox_oldest_age_s": oldest_age,
            "degraded": self.degraded(),
            "degraded_why": self.degraded_why(),
            "behind_changes": max(0, (marks.head.seq if marks.head else 0) - marks.change_seq),
            "health": dict(self._health()),
            "uptime_s": int(self._mono() - self._started),
            "rejected": dict(sorted(self.rejected.items())),
        }
        return body

    def publish_status(self, publish: Publish) -> None:
        payload = self._signer.seal(
            "status", self.topics.site, self.status_body(), tid=self.topics.tid
        )
        publish(self.topics.terminal_topic("status"), payload, True)
        self._status_at = self._mono()

    def death_payload(self) -> bytes:
        """The Last Will: the same status, offline; the broker publishes it if we vanish."""
        body = {"online": False, "boot_id": self.boot_id, "version": self.settings.software_version}
        return self._signer.seal("status", self.topics.site, body, tid=self.topics.tid)
