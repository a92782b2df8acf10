"""The terminal's HQ link as one object the composition root starts and stops.

Two threads: ``mqtt-net`` (:class:`~sync.link.MqttLink`, owns the paho client) and ``sync-worker``
(runs :class:`~sync.engine.SyncEngine`: applies inbound messages through the store port,
acknowledges them after the commit, drains the outbox, publishes status). The tap path never
waits for either: it only shares the store's lock for the length of one short transaction.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from models.errors import TerminalError
from sync.engine import CommandHandler, SyncEngine, refuse_all
from sync.envelope import Signer, public_key_b64
from sync.keys import key_id, load_or_create
from sync.link import Inbound, LinkOptions, MqttLink
from sync.port import SyncPort
from sync.settings import SyncSettings

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.05


class SyncService:
    def __init__(
        self,
        settings: SyncSettings,
        port: SyncPort,
        *,
        commands: CommandHandler = refuse_all,
        health: Callable[[], Mapping[str, str]] = dict,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        key = load_or_create(settings.key_file)
        self.signer = Signer(key_id(key.public_key(), "t-"), key)
        self.engine = SyncEngine(
            settings, port, self.signer, commands=commands, health=health, clock=clock
        )
        topics = self.engine.topics
        self.link = MqttLink(
            LinkOptions(
                client_id=settings.tid,
                host=settings.host,
                port=settings.port,
                subscriptions=tuple(topics.terminal_subscriptions()),
                mqtt_version=settings.mqtt_version,
                keepalive=settings.keepalive,
                session_expiry=settings.session_expiry,
                tls=settings.tls,
                username=settings.username,
                password=settings.password,
                reconnect_max=settings.reconnect_max,
                will_topic=topics.terminal_topic("status"),
                # The keyset too: a deny signed by a key it brings must not be judged first.
                urgent_suffixes=("/keys", "/deny"),
            ),
            will=self.engine.death_payload,
        )
        self._stop = threading.Event()
        self._requests: queue.Queue[str] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="sync-worker", daemon=True)

    @property
    def public_key(self) -> str:
        """This terminal's public key (base64 raw Ed25519), for enrolment at HQ."""
        return public_key_b64(self.signer.public_key)

    @property
    def degraded(self) -> bool:
        return self.engine.degraded()

    # -- what the diag CLI uses (any thread; the engine itself is touched only by the worker) ---

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.link.connected.is_set(),
            "degraded": self.degraded,
            "public_key": self.public_key,
            "resyncs": self.engine.resyncs,
            "acked_through": self.engine.outbox.acked,
            "clock_offset_s": self.engine.clock_offset_s(),
            "rejected": dict(self.engine.rejected),
        }

    def force_resync(self) -> str:
        self._requests.put("resync")
        return "resync requested from HQ"

    def force_upload(self) -> str:
        self._requests.put("upload")
        return "unacknowledged records will be sent again"

    def start(self) -> None:
        logger.info(
            "HQ link for terminal %s at %s:%d, key %s",
            self.engine.settings.tid,
            self.engine.settings.host,
            self.engine.settings.port,
            self.signer.kid,
        )
        self.link.start()
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._worker.is_alive():
            self._worker.join(timeout)
        if self.link.connected.is_set():
            # A clean disconnect suppresses the Last Will, so say goodbye ourselves.
            try:
                self.link.publish(
                    self.engine.topics.terminal_topic("status"),
                    self.engine.death_payload(),
                    True,
                )
            except TerminalError:
                logger.exception("could not build the offline status")
        self.engine.snapshots.abandon()
        self.link.stop(timeout)

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        self.link.publish(topic, payload, retain)

    def _run(self) -> None:
        last_tick = 0.0
        while not self._stop.is_set():
            try:
                item = self.link.inbound.get(timeout=TICK_SECONDS)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._deliver(item)
                self._serve_requests()
                now = time.monotonic()
                if now - last_tick >= TICK_SECONDS:
                    last_tick = now
                    self.engine.tick(self._publish)
            except Exception:
                # The store failed (disk full, I/O error): nothing was acknowledged, so after a
                # reconnect the broker delivers it again. Pause so a persistent fault cannot spin.
                logger.exception("sync worker step failed; reconnecting to get it redelivered")
                self.link.drop_connection()
                self._stop.wait(1.0)

    def _serve_requests(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            if request == "resync":
                self.engine.resync_now(self._publish)
            else:
                self.engine.upload_now()

    def _deliver(self, item: Inbound) -> None:
        if item.event == "connected":
            self.engine.on_connected(self._publish)
        elif item.event == "disconnected":
            self.engine.on_disconnected()
        else:
            self.engine.handle(item.topic, item.payload, self._publish)
            self.link.ack(item)
