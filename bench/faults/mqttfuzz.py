"""Malformed MQTT messages against the running daemon, on every topic it subscribes to.

A real mosquitto, the reference HQ as a process and the real daemon (a door terminal with
`[sync]` on), synced. A fuzzer client then publishes, in chunks, on each of the terminal's
subscriptions (`head`, `deny`, `changes` and its own `snapshot`, `cmd`, `txack`):

- random bytes, invalid UTF-8, lone surrogates (`"\\ud800"`, the poison pill), truncated real
  envelopes, JSON that is not an object, deep nesting (100,000 levels), 1 MB and 10 MB payloads;
- envelopes signed with an unknown key, with a broken signature, for another site or terminal,
  of another type than the topic carries;
- envelopes signed with HQ's real key whose body has one required field of the wrong JSON type
  (never a valid body: a valid signed message from HQ would rightly be applied).

After each chunk the campaign waits until the daemon's rejection counters (`ykt diag status`)
account for every message the chunk delivered. Then, checked:

- the daemon is alive, its link never reconnected, and its RSS stayed within a bound;
- nothing was applied: cards, holders, purses, keys, the change mark and the journal are as before,
  no command ran and the gate never opened;
- every message sent was counted as rejected, by reason (those the broker itself refuses to
  deliver, none with its default limits, would show as a shortfall).
"""

import argparse
import hashlib
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from bench.faults.backlog import SITE, Processes, _synced, build_site
from bench.faults.harness import diag_status, log_entries, notify_socket, read_only, rss_kb
from devtools.hq.db import HqDb
from devtools.mosquitto import wait_for
from models.timefmt import rfc3339
from sync.envelope import Signer
from sync.topics import Topics
from tests.fixtures import card_number

TID = "fault-door-01"  # the harness names its door terminal so
CHUNK = 250
RSS_GROWTH_LIMIT_KB = 150_000  # a 10 MB payload is parsed (and refused) in memory, not kept
BIG = {"1 MB": 1 << 20, "10 MB": 10 << 20}


def _templates(now: datetime) -> dict[str, tuple[dict[str, Any], list[tuple[str, ...]]]]:
    """Per message type: a well-formed body and the paths of its required fields.

    Commands are already expired, so even one that survived its mutation could not run."""
    past = rfc3339(now - timedelta(hours=1))
    return {
        "head": (
            {"seq": 0, "issued": rfc3339(now), "expires": rfc3339(now + timedelta(minutes=5))},
            [("seq",), ("issued",), ("expires",)],
        ),
        "changes": (
            {"from": 1, "to": 1, "changes": [{"seq": 1, "kind": "card.upsert", "key": "x"}]},
            [("from",), ("to",), ("changes",)],
        ),
        "deny": (
            {"seq": 1, "cards": [{"number": card_number(1), "status": "lost"}]},
            [("seq",), ("cards",), ("cards", "0", "number"), ("cards", "0", "status")],
        ),
        "snapshot": ({"id": "s", "index": 0, "count": 1, "data": ""}, [("id",), ("index",)]),
        "txack": ({"through": 0, "events": []}, [("through",), ("events",)]),
        "cmd": (
            {"name": "open_door", "args": {}, "expires": past},
            [("name",), ("args",), ("expires",)],
        ),
    }


def _wrong_type(value: Any, rng: random.Random) -> Any:
    """A value of another JSON type than ``value`` (no floats: the signer refuses them)."""
    choices: list[Any] = [
        None,
        True,
        "x" * rng.randint(0, 40),
        [1, "a"],
        {"k": [None]},
        rng.choice((-(2**70), rng.randint(-(2**63), 2**63))),
    ]
    return rng.choice([c for c in choices if type(c) is not type(value)])


def _mutated(body: dict[str, Any], path: tuple[str, ...], rng: random.Random) -> dict[str, Any]:
    copy = json.loads(json.dumps(body))
    target: Any = copy
    for step in path[:-1]:
        target = target[int(step)] if isinstance(target, list) else target[step]
    key: Any = int(path[-1]) if isinstance(target, list) else path[-1]
    target[key] = _wrong_type(target[key], rng)
    return dict(copy)


@dataclass
class Fuzzer:
    rng: random.Random
    hq: Signer
    rogue: Signer
    topics: Topics
    sent: Counter[str] = field(default_factory=Counter)

    def _envelope(self, msg_type: str, body: dict[str, Any], signer: Signer, **kw: Any) -> bytes:
        tid = kw.pop("tid", TID if msg_type in ("snapshot", "cmd", "txack") else None)
        return signer.seal(msg_type, kw.pop("site", SITE), body, tid=tid, **kw)

    def messages(self, count: int) -> Iterator[tuple[str, bytes]]:
        names = list(_templates(datetime.now(UTC)))
        makers: list[Callable[[str], tuple[str, bytes]]] = [
            self.garbage, self.bad_text, self.truncated, self.not_object, self.deep,
            self.unknown_key, self.bad_signature, self.elsewhere, self.wrong_topic,
            self.wrong_types, self.wrong_types, self.wrong_types,
        ]  # fmt: skip
        for label, size in BIG.items():  # a few of each, not thousands: 10 MB each
            for _ in range(3):
                yield self._count(f"{label} payload", self._topic(self.rng.choice(names)), size)
        for _ in range(count - 3 * len(BIG)):
            yield self.rng.choice(makers)(self.rng.choice(names))

    def _topic(self, name: str) -> str:
        if name in ("head", "changes", "deny"):
            return self.topics.site_topic(name)
        return self.topics.terminal_topic(name)

    def _count(self, kind: str, topic: str, size: int) -> tuple[str, bytes]:
        self.sent[kind] += 1
        if self.rng.random() < 0.5:
            return topic, self.rng.randbytes(size)
        return topic, b'{"v":1,"type":"head","body":"' + b"A" * size + b'"}'

    def _sent(self, kind: str, topic: str, payload: bytes) -> tuple[str, bytes]:
        self.sent[kind] += 1
        return topic, payload

    def garbage(self, name: str) -> tuple[str, bytes]:
        return self._sent(
            "random bytes", self._topic(name), self.rng.randbytes(self.rng.randint(0, 3000))
        )

    def bad_text(self, name: str) -> tuple[str, bytes]:
        real = self._envelope(name, _templates(datetime.now(UTC))[name][0], self.rogue)
        poisons = (b"\\ud800", b"\xff\xfe", b"\xed\xa0\x80", b"\x00")
        at = self.rng.randint(0, len(real))
        return self._sent(
            "poison text", self._topic(name), real[:at] + self.rng.choice(poisons) + real[at:]
        )

    def truncated(self, name: str) -> tuple[str, bytes]:
        real = self._envelope(name, _templates(datetime.now(UTC))[name][0], self.hq)
        return self._sent(
            "truncated envelope", self._topic(name), real[: self.rng.randint(0, len(real) - 1)]
        )

    def not_object(self, name: str) -> tuple[str, bytes]:
        value = self.rng.choice(["[1,2]", '"head"', "null", "12", "true", "{}", '{"v":1}'])
        return self._sent("not an envelope", self._topic(name), value.encode())

    def deep(self, name: str) -> tuple[str, bytes]:
        depth = self.rng.choice((1000, 100_000))
        nested = "[" * depth + "]" * depth
        text = (
            f'{{"v":1,"type":"{name}","body":{{"x":{nested}}}}}'
            if self.rng.random() < 0.5
            else nested
        )
        return self._sent("deep nesting", self._topic(name), text.encode())

    def unknown_key(self, name: str) -> tuple[str, bytes]:
        body = _templates(datetime.now(UTC))[name][0]
        return self._sent("unknown key", self._topic(name), self._envelope(name, body, self.rogue))

    def bad_signature(self, name: str) -> tuple[str, bytes]:
        envelope = json.loads(self._envelope(name, _templates(datetime.now(UTC))[name][0], self.hq))
        sig = bytearray(envelope["sig"].encode())
        sig[self.rng.randrange(len(sig) - 2)] ^= 0x01
        envelope["sig"] = sig.decode(errors="replace")
        return self._sent("broken signature", self._topic(name), json.dumps(envelope).encode())

    def elsewhere(self, name: str) -> tuple[str, bytes]:
        body = _templates(datetime.now(UTC))[name][0]
        if self.rng.random() < 0.5:
            payload = self._envelope(name, body, self.hq, site="other-site")
        else:
            payload = self._envelope(name, body, self.hq, tid="other-terminal")
            if name not in ("snapshot", "cmd", "txack"):
                payload = self._envelope(name, body, self.hq, site="other-site")
        return self._sent("another site or terminal", self._topic(name), payload)

    def wrong_topic(self, name: str) -> tuple[str, bytes]:
        other = self.rng.choice([n for n in _templates(datetime.now(UTC)) if n != name])
        body = _templates(datetime.now(UTC))[other][0]
        return self._sent(
            "type not for the topic", self._topic(name), self._envelope(other, body, self.hq)
        )

    def wrong_types(self, name: str) -> tuple[str, bytes]:
        body, paths = _templates(datetime.now(UTC))[name]
        bad = _mutated(body, self.rng.choice(paths), self.rng)
        return self._sent(
            "signed, wrong field type", self._topic(name), self._envelope(name, bad, self.hq)
        )


def _state(db: Path) -> str:
    """A digest of everything a message could change at the terminal."""
    digest = hashlib.sha256()
    with closing(read_only(db)) as conn:
        for table in ("cards", "holders", "purses", "commands", "journal", "events"):
            try:
                rows = conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            except sqlite3.OperationalError:
                continue  # a table this schema does not have
            digest.update(f"{table}:{rows!r}".encode())
        marks = conn.execute(
            "SELECT key, value FROM sync_state WHERE key IN ('change_seq', 'tx_acked') ORDER BY 1"
        ).fetchall()
        digest.update(repr(marks).encode())
    return digest.hexdigest()


def _rejected(config: Path) -> Counter[str]:
    status = diag_status(config)
    link = (status.get("sync") or {}).get("link") or {}
    return Counter({str(k): int(v) for k, v in (link.get("rejected") or {}).items()})


def _counted(config: Path, baseline: Counter[str], sent: int) -> bool:
    return sum((_rejected(config) - baseline).values()) >= sent


def scenario(messages: int = 20_000, seed: int = 1, workdir: Path | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    result: dict[str, Any] = {"scenario": "mqtt-fuzz", "seed": seed, "violations": []}
    violations: list[str] = result["violations"]
    with tempfile.TemporaryDirectory(prefix="ykt-mqttfuzz-", dir=workdir) as scratch:
        root = Path(scratch)
        site = build_site(root, kind="door", tid=TID)
        broker, config, db, hq_db, hq_root = (
            site.broker, site.config, site.db, site.hq_db, site.hq_root
        )  # fmt: skip
        hq = HqDb(hq_root)
        signer = hq.signer()
        hq.close()
        fuzzer = Fuzzer(
            rng, signer, Signer("rogue", Ed25519PrivateKey.generate()), Topics("ykt/v1", SITE, TID)
        )
        procs = Processes(root, config, hq_root, broker.port)
        broker.start()
        try:
            with notify_socket(procs.notify_path) as notify:
                procs.start_hq()
                procs.start_daemon(notify)
                if not wait_for(lambda: _synced(db, hq_db), 60):
                    raise RuntimeError("the terminal did not sync with HQ within a minute")
                _fuzz(procs, fuzzer, config, db, broker.port, messages, result)
        finally:
            procs.close()
            broker.stop()
        log = procs.log
        connects = sum(
            1 for e in log_entries(log) if "connected to the MQTT broker" in str(e.get("message"))
        )
        result["link_connects"] = connects
        if connects != 1:
            violations.append(f"the link connected {connects} times (once expected)")
        opened = sum(
            1 for e in log_entries(log) if str(e.get("message")).startswith("sim gate: opened")
        )
        if opened:
            violations.append(f"the gate opened {opened} times")
        if "Traceback" in log.read_text(encoding="utf-8", errors="replace"):
            violations.append("a traceback in the daemon's output")
    return result


def _fuzz(
    procs: Processes,
    fuzzer: Fuzzer,
    config: Path,
    db: Path,
    port: int,
    messages: int,
    result: dict[str, Any],
) -> None:
    violations: list[str] = result["violations"]
    assert procs.daemon is not None
    pid = procs.daemon.pid
    before_state = _state(db)
    baseline = _rejected(config)
    rss = [rss_kb(pid)]
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="fuzzer")
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.monotonic()
    sent = 0
    try:
        pending: list[mqtt.MQTTMessageInfo] = []
        for topic, payload in fuzzer.messages(messages):
            pending.append(client.publish(topic, payload, qos=1))
            sent += 1
            if len(pending) >= CHUNK or sent == messages:
                for info in pending:
                    info.wait_for_publish(60)
                pending = []
                # Delivered is not yet handled: wait until the counters account for the chunk.
                if not wait_for(partial(_counted, config, baseline, sent), 60, 0.2):
                    break
                rss.append(rss_kb(pid))
                if procs.daemon.poll() is not None:
                    violations.append(f"the daemon died: exit {procs.daemon.returncode}")
                    return
    finally:
        client.loop_stop()
        client.disconnect()
    seconds = time.monotonic() - started
    rejected = _rejected(config) - baseline
    status = diag_status(config)
    link = (status.get("sync") or {}).get("link") or {}
    result |= {
        "sent": sent,
        "sent_by_kind": dict(sorted(fuzzer.sent.items())),
        "rejected": sum(rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items())),
        "seconds": round(seconds, 1),
        "messages_per_s": round(sent / seconds) if seconds else None,
        "rss_kb": {"start": rss[0], "max": max(rss), "end": rss[-1]},
        "connected_at_end": bool(link.get("connected")),
        "diag_problems": [str(p) for p in status.get("problems") or []],
    }
    if sent < messages:
        violations.append(f"stopped after {sent} of {messages}: the counters did not keep up")
    if sum(rejected.values()) != sent:
        violations.append(f"{sent} sent, {sum(rejected.values())} counted as rejected")
    if max(rss) - rss[0] > RSS_GROWTH_LIMIT_KB:
        violations.append(f"RSS grew from {rss[0]} kB to {max(rss)} kB")
    if _state(db) != before_state:
        violations.append("the terminal's data changed: something was applied")
    if not link.get("connected"):
        violations.append("the link is down at the end")
    if not any("messages rejected since start" in p for p in result["diag_problems"]):
        violations.append("diag status does not name the rejections")


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults mqtt-fuzz", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.messages < 3 * len(BIG) + 1:
        parser.error(f"--messages must be more than {3 * len(BIG)}")
    result = scenario(args.messages, args.seed)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
