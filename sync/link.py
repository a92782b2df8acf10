"""The MQTT connection: one thread owns the paho client; everything else talks to it by queue.

paho's client is not meant to be driven from several threads, and a slow callback stalls its
keepalive, so the network thread only moves bytes: inbound messages go onto a priority queue for
the worker (deny first), and publishes and acknowledgements come back on a command queue. No
project lock is ever taken in a paho callback, and every callback is wrapped so an exception is
logged instead of killing the loop.

Acknowledgements are manual (``manual_ack=True``): the worker asks for one only after the
message's effect is committed. Each inbound message carries the connection generation it arrived
on; an acknowledgement for an older connection is dropped, because packet ids are reused and
acknowledging the wrong message would lose it.

Reconnects use tenacity's random-exponential wait (jitter from the first attempt), so a fleet
does not reconnect in lock-step after a broker restart; paho's own reconnect is switched off.
"""

import functools
import itertools
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from tenacity import RetryCallState, Retrying, wait_random, wait_random_exponential

from sync.settings import TlsFiles

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
URGENT, NORMAL = 0, 1


def guarded(fn: F) -> F:
    """Log instead of raising: an exception escaping a paho callback would end the loop."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            logger.exception("MQTT callback %s failed", fn.__name__)
            return None

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class LinkOptions:
    client_id: str
    host: str
    port: int
    subscriptions: tuple[str, ...]
    mqtt_version: str = "5"
    keepalive: int = 30
    session_expiry: int = 8 * 24 * 3600
    tls: TlsFiles | None = None
    username: str | None = None
    password: str | None = None
    receive_maximum: int = 64
    reconnect_max: float = 60.0
    will_topic: str | None = None
    urgent_suffixes: tuple[str, ...] = ()  # topics ending so jump the inbound queue


@dataclass(order=True, frozen=True)
class Inbound:
    """A message (or a link event when ``topic`` is empty) waiting for the worker."""

    priority: int
    order: int
    topic: str = field(compare=False)
    payload: bytes = field(compare=False, default=b"")
    generation: int = field(compare=False, default=0)
    mid: int = field(compare=False, default=0)
    qos: int = field(compare=False, default=0)
    event: str = field(compare=False, default="")  # "connected" / "disconnected" for events


# A broker restart or a network blip is over within seconds: this many retries come within
# 0.2-2 s (about 20 s of outage) so the backlog is not left waiting a minute for a long backoff;
# only then does the random-exponential wait grow to ``reconnect_max``.
FAST_RETRIES = 20


class MqttLink:
    def __init__(self, options: LinkOptions, will: Callable[[], bytes] | None = None) -> None:
        self.options = options
        self._will = will
        self.inbound: queue.PriorityQueue[Inbound] = queue.PriorityQueue()
        self._commands: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._order = itertools.count()
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._generation = 0
        self._connack: ReasonCode | None = None
        self._fast_wait = wait_random(0.2, min(2.0, options.reconnect_max))
        self._wait = wait_random_exponential(multiplier=0.5, max=options.reconnect_max)
        self._thread = threading.Thread(target=self._run, name="mqtt-net", daemon=True)
        self.connects = 0
        self._client = self._new_client()

    # -- called from any thread -----------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._commands.put(("stop",))
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self._commands.put(("publish", topic, payload, retain))

    def ack(self, message: Inbound) -> None:
        if message.qos:
            self._commands.put(("ack", message.generation, message.mid, message.qos))

    def drop_connection(self) -> None:
        """Reconnect: the broker then redelivers what was not acknowledged."""
        self._commands.put(("drop",))

    # -- the network thread ---------------------------------------------------------------------

    def _new_client(self) -> mqtt.Client:
        opts = self.options
        v5 = opts.mqtt_version == "5"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=opts.client_id,
            clean_session=None if v5 else False,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        if opts.tls is not None:
            client.tls_set(
                ca_certs=str(opts.tls.ca),
                certfile=str(opts.tls.cert) if opts.tls.cert else None,
                keyfile=str(opts.tls.key) if opts.tls.key else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        if opts.username:
            client.username_pw_set(opts.username, opts.password)
        client.max_inflight_messages_set(32)
        client.max_queued_messages_set(0)
        client.on_connect = guarded(self._on_connect)
        client.on_disconnect = guarded(self._on_disconnect)
        client.on_message = guarded(self._on_message)
        return client

    def _backoff(self, attempt: int) -> float:
        state = RetryCallState(Retrying(), None, (), {})
        if attempt <= FAST_RETRIES:
            state.attempt_number = attempt
            return float(self._fast_wait(state))
        state.attempt_number = attempt - FAST_RETRIES
        return float(self._wait(state))

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            established = False
            try:
                self._connect()
                established = self._serve()
            except (OSError, ssl.SSLError, ValueError) as exc:
                logger.warning(
                    "cannot reach the MQTT broker %s:%d: %s",
                    self.options.host,
                    self.options.port,
                    exc,
                )
            except Exception:
                logger.exception("MQTT network loop failed")
            finally:
                self._went_down()
            if self._stop.is_set():
                break
            attempt = 1 if established else attempt + 1
            delay = self._backoff(attempt)
            logger.info("reconnecting to the MQTT broker in %.1f s", delay)
            self._stop.wait(delay)
            self._discard_publishes()

    def _connect(self) -> None:
        opts, client = self.options, self._client
        if opts.will_topic and self._will is not None:
            client.will_set(opts.will_topic, self._will(), qos=1, retain=True)
        self._connack = None
        if opts.mqtt_version == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = opts.session_expiry
            props.ReceiveMaximum = opts.receive_maximum
            client.connect(
                opts.host, opts.port, opts.keepalive, clean_start=False, properties=props
            )
        else:
            client.connect(opts.host, opts.port, opts.keepalive)

    def _serve(self) -> bool:
        """Run one connection until it ends; ``True`` if the broker had accepted it."""
        client = self._client
        deadline = time.monotonic() + 10
        while True:
            rc = client.loop(timeout=0.02)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                logger.info("MQTT connection lost: %s", mqtt.error_string(rc))
                return self.connected.is_set() or self._connack is not None
            if self._connack is not None and self._connack.is_failure:
                logger.warning("MQTT broker refused the connection: %s", self._connack)
                client.disconnect()
                return False
            if not self.connected.is_set() and time.monotonic() > deadline:
                logger.warning("no CONNACK from the MQTT broker within 10 s")
                client.disconnect()
                return False
            if not self._run_commands(client):
                return True

    def _run_commands(self, client: mqtt.Client) -> bool:
        """Carry out queued publishes and acks; ``False`` when the connection should end."""
        for _ in range(256):  # bounded, so the socket is serviced between bursts
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return True
            kind = command[0]
            if kind == "publish":
                _, topic, payload, retain = command
                if self.connected.is_set():
                    client.publish(topic, payload, qos=1, retain=retain)
                else:
                    logger.debug("not connected: dropped a publish to %s", topic)
            elif kind == "ack":
                _, generation, mid, qos = command
                if generation == self._generation and self.connected.is_set():
                    client.ack(mid, qos)
            elif kind in ("stop", "drop"):
                # A clean stop publishes nothing more: the worker sent the offline status.
                client.disconnect()
                client.loop(timeout=0.2)
                return False
        return True

    def _discard_publishes(self) -> None:
        # Anything queued while down is stale (the outbox and status are re-sent on connect).
        pending = []
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                break
            if command[0] in ("stop", "drop"):
                pending.append(command)
        for command in pending:
            if command[0] == "stop":
                self._commands.put(command)

    def _went_down(self) -> None:
        if self.connected.is_set():
            self.connected.clear()
            self._event("disconnected")

    def _event(self, name: str) -> None:
        self.inbound.put(Inbound(URGENT, next(self._order), "", event=name))

    # -- paho callbacks (network thread; queue operations only) ---------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connack = reason_code
        if reason_code.is_failure:
            return
        self._generation += 1
        self.connects += 1
        if self.options.mqtt_version == "5":
            client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.options.subscriptions])
        else:
            client.subscribe([(t, 1) for t in self.options.subscriptions])
        self.connected.set()
        logger.info(
            "connected to the MQTT broker %s:%d (session %s)",
            self.options.host,
            self.options.port,
            "resumed" if flags.session_present else "new",
        )
        self._event("connected")

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._went_down()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = message.topic
        urgent = any(topic.endswith(s) for s in self.options.urgent_suffixes)
        self.inbound.put(
            Inbound(
                URGENT if urgent else NORMAL,
                next(self._order),
                topic,
                bytes(message.payload),
                self._generation,
                message.mid,
                message.qos,
            )
        )
