"""The engine without a broker: what each inbound message does and what goes back to HQ."""

import base64
import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from models.errors import StoreError
from models.journal import TransactionDraft
from models.matcher import Template
from models.reasons import Reason
from sync.changes import parse_batch
from sync.engine import COMMAND_CLOCK_SKEW_S, MAX_COMMAND_TTL_S, CommandRefused, SyncEngine
from sync.envelope import Signer, loads_strict
from sync.keys import key_id, load_or_create
from sync.snapshot import build_chunks, chunk_bodies
from sync.topics import Topics
from terminal.store import SecurityEvent
from terminal.store.keeping import DROPPED_FACES, Keeping
from terminal.store.sync_port import StoreSyncPort
from tests.sync.conftest import Published
from tests.sync.messages import (
    NOW,
    SITE,
    TID,
    batch,
    card,
    card_number,
    change,
    head,
    holder,
    settings,
)

TOPICS = Topics("ykt/v1", SITE, TID)


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


class Doors:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Mapping[str, Any]]] = []

    def __call__(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls.append((name, args))
        if name == "set_mode":
            raise CommandRefused("mode not supported")
        return {"opened": True}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def doors() -> Doors:
    return Doors()


@pytest.fixture
def engine(
    tmp_path: Path, port: StoreSyncPort, hq: Signer, clock: Clock, doors: Doors
) -> SyncEngine:
    conf = settings(tmp_path, hq, resync_after=5.0)
    key = load_or_create(conf.key_file)
    return SyncEngine(
        conf,
        port,
        Signer(key_id(key.public_key(), "t-"), key),
        commands=doors,
        clock=lambda: clock.now,
        monotonic=lambda: clock.mono,
    )


def bodies(published: Published, name: str) -> list[dict[str, Any]]:
    return [json.loads(p)["body"] for t, p, _ in published if t.endswith("/" + name)]


def send(
    engine: SyncEngine,
    hq: Signer,
    topic: str,
    msg_type: str,
    body: dict,
    published: Published,
    **kw: Any,
) -> None:
    engine.handle(topic, hq.seal(msg_type, SITE, body, **kw), published)


def test_changes_apply_and_a_gap_asks_for_a_resync(
    engine: SyncEngine, hq: Signer, published: Published, port: StoreSyncPort
) -> None:
    first = batch(
        [
            change(1, "holder.upsert", holder=holder("H1")),
            change(2, "card.upsert", card=card(1, "H1")),
        ]
    )
    send(engine, hq, TOPICS.changes, "changes", first, published)
    assert port.marks().change_seq == 2
    send(
        engine,
        hq,
        TOPICS.changes,
        "changes",
        batch([change(5, "card.upsert", card=card(2, "H1"))]),
        published,
    )
    assert port.marks().change_seq == 2
    assert bodies(published, "resync") == [{"have": 2}]
    # Another gap right away does not flood HQ with resyncs.
    send(
        engine,
        hq,
        TOPICS.changes,
        "changes",
        batch([change(6, "card.upsert", card=card(3, "H1"))]),
        published,
    )
    assert len(bodies(published, "resync")) == 1


def test_rejections_are_counted_and_never_applied(
    engine: SyncEngine, hq: Signer, published: Published, port: StoreSyncPort
) -> None:
    body = batch([change(1, "holder.upsert", holder=holder("H1"))])
    stranger = Signer("hq-stranger", hq._key)  # right key material, unknown kid
    engine.handle(TOPICS.changes, stranger.seal("changes", SITE, body), published)
    engine.handle(TOPICS.changes, hq.seal("changes", "other-site", body), published)
    payload = hq.seal("changes", SITE, body)
    engine.handle(TOPICS.changes, payload.replace(b'"sig":"', b'"sig":"AA'), published)
    engine.handle(TOPICS.changes, payload + b" " * (1 << 20), published)
    engine.handle(TOPICS.changes, hq.seal("cmd", SITE, body), published)  # type for another topic
    engine.handle(TOPICS.terminal_topic("cmd", "gate-02"), payload, published)
    engine.handle(
        TOPICS.changes,
        hq.seal("changes", SITE, {"from": 1, "to": 1, "changes": [{"seq": 1}]}),
        published,
    )
    assert port.marks().change_seq == 0
    assert dict(engine.rejected) == {
        "unknown_kid": 1,
        "wrong_site": 1,
        "bad_sig": 1,
        "oversize": 1,
        "wrong_type": 1,
        "wrong_terminal": 1,
        "bad_body": 1,
    }


def test_replayed_older_head_is_rejected(
    engine: SyncEngine, hq: Signer, published: Published, clock: Clock
) -> None:
    send(engine, hq, TOPICS.head, "head", head(0, NOW), published)
    send(engine, hq, TOPICS.head, "head", head(0, NOW - timedelta(minutes=5)), published)
    assert engine.rejected["stale"] == 1


def test_degraded_when_the_head_expires(
    engine: SyncEngine, hq: Signer, published: Published, clock: Clock
) -> None:
    assert engine.degraded()  # no head yet
    send(engine, hq, TOPICS.head, "head", head(0, NOW, ttl=60), published)
    assert not engine.degraded()
    engine.on_connected(published)
    clock.advance(61)
    engine.tick(published)
    assert engine.degraded()
    assert bodies(published, "status")[-1]["degraded"] is True


def test_degraded_while_far_behind_an_unexpired_head(
    engine: SyncEngine, hq: Signer, published: Published, clock: Clock
) -> None:
    behind = engine.settings.degraded_behind
    send(engine, hq, TOPICS.head, "head", head(behind, NOW), published)
    assert not engine.degraded()  # as far behind as allowed: still trusted
    send(
        engine, hq, TOPICS.head, "head", head(behind + 4_499, NOW + timedelta(seconds=1)), published
    )
    assert engine.degraded()  # a fresh head, but 4,999 changes (voided cards) not yet applied
    engine.on_connected(published)
    status = bodies(published, "status")[-1]
    assert status["degraded"] is True and status["degraded_why"] == "far_behind"
    assert status["behind_changes"] == behind + 4_499


def test_a_clock_set_back_does_not_keep_an_expired_head_fresh(
    engine: SyncEngine, hq: Signer, published: Published, clock: Clock
) -> None:
    send(engine, hq, TOPICS.head, "head", head(0, NOW, ttl=60), published)
    clock.advance(30)
    assert engine.clock_offset_s() == pytest.approx(0.0)
    clock.now -= timedelta(hours=1)  # an operator, a bad RTC, a rogue NTP server
    assert engine.clock_offset_s() == pytest.approx(-3600.0)
    assert not engine.degraded()  # still inside the 60 s it was given
    clock.advance(31)  # 61 s since it arrived, though the wall clock reads 59 min before it
    assert clock.now < NOW
    assert engine.degraded()
    assert engine.clock_offset_s() is None  # an expired head vouches for no clock


def test_connect_behind_the_head_resyncs_at_once(
    engine: SyncEngine, hq: Signer, published: Published
) -> None:
    engine.on_connected(published)
    assert bodies(published, "status")[0]["online"] is True
    send(engine, hq, TOPICS.head, "head", head(7), published)
    assert bodies(published, "resync") == [{"have": 0}]


def test_behind_without_progress_resyncs_after_a_while(
    engine: SyncEngine, hq: Signer, published: Published, clock: Clock
) -> None:
    engine.on_connected(published)
    send(engine, hq, TOPICS.head, "head", head(0), published)
    send(engine, hq, TOPICS.head, "head", head(3, NOW + timedelta(seconds=1)), published)
    assert bodies(published, "resync") == []
    clock.advance(6)
    engine.tick(published)
    assert bodies(published, "resync") == [{"have": 0}]


def cmd(name: str, expires: datetime, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}


def test_a_command_valid_for_longer_than_the_cap_is_refused(
    engine: SyncEngine, hq: Signer, published: Published, doors: Doors
) -> None:
    topic = TOPICS.terminal_topic("cmd")
    far = NOW + timedelta(seconds=MAX_COMMAND_TTL_S + COMMAND_CLOCK_SKEW_S + 60)  # kept for later
    send(engine, hq, topic, "cmd", cmd("open", far), published, tid=TID)
    send(engine, hq, topic, "cmd", cmd("open", NOW + timedelta(minutes=1)), published, tid=TID)
    assert [r["ok"] for r in bodies(published, "reply")] == [False, True]
    assert bodies(published, "reply")[0]["error"] == "expires too far ahead"
    assert len(doors.calls) == 1


def test_per_terminal_messages_must_name_the_terminal(
    engine: SyncEngine, hq: Signer, published: Published, doors: Doors
) -> None:
    topic = TOPICS.terminal_topic("cmd")
    send(engine, hq, topic, "cmd", cmd("open", NOW + timedelta(minutes=1)), published)  # no tid
    ack = TOPICS.terminal_topic("txack")
    send(engine, hq, ack, "txack", {"through": 0}, published)
    assert engine.rejected["missing_field"] == 2 and doors.calls == []


def test_commands_run_once_and_expired_ones_are_refused(
    engine: SyncEngine, hq: Signer, published: Published, doors: Doors
) -> None:
    topic = TOPICS.terminal_topic("cmd")
    payload = hq.seal(
        "cmd", SITE, cmd("open", NOW + timedelta(minutes=1), reason="fire drill"), tid=TID
    )
    engine.handle(topic, payload, published)
    engine.handle(topic, payload, published)  # redelivered
    send(engine, hq, topic, "cmd", cmd("open", NOW - timedelta(seconds=1)), published, tid=TID)
    send(
        engine,
        hq,
        topic,
        "cmd",
        cmd("set_mode", NOW + timedelta(minutes=1), mode="free"),
        published,
        tid=TID,
    )
    send(engine, hq, topic, "cmd", cmd("status", NOW + timedelta(minutes=1)), published, tid=TID)
    send(engine, hq, topic, "cmd", cmd("reboot", NOW + timedelta(minutes=1)), published, tid=TID)
    replies = bodies(published, "reply")
    assert [r["ok"] for r in replies] == [True, False, False, False, True, False]
    assert [r.get("error") for r in replies[1:4]] == ["duplicate", "expired", "mode not supported"]
    assert replies[4]["result"]["change_seq"] == 0
    assert "unknown command" in replies[5]["error"]
    assert doors.calls == [("open", {"reason": "fire drill"}), ("set_mode", {"mode": "free"})]
    assert engine.rejected["expired"] == 1 and engine.rejected["stale"] == 1


def draining_engine(
    tmp_path: Path,
    port: StoreSyncPort,
    hq: Signer,
    clock: Clock,
    *,
    records: int,
    tx_batch: int,
    tx_window: int,
) -> SyncEngine:
    """An engine over a journal of ``records`` door records, none of them sent yet."""
    conf = settings(tmp_path, hq, tx_batch=tx_batch, tx_window=tx_window, resend_after=10.0)
    key = load_or_create(conf.key_file)
    engine = SyncEngine(
        conf, port, Signer("t", key), clock=lambda: clock.now, monotonic=lambda: clock.mono
    )
    for i in range(records):
        port.store.commit(
            TransactionDraft(
                "door", "2026-11-23T09:00:00+08:00", i, "card", "deny", Reason.CARD_UNKNOWN, 0
            )
        )
    return engine


def test_outbox_drains_in_batches_moved_only_by_txack(
    tmp_path: Path, port: StoreSyncPort, hq: Signer, clock: Clock, published: Published
) -> None:
    engine = draining_engine(tmp_path, port, hq, clock, records=5, tx_batch=2, tx_window=2)
    engine.on_connected(published)
    engine.tick(published)
    sent = [[r["seq"] for r in b["records"]] for b in bodies(published, "tx")]
    assert sent == [[1, 2], [3, 4]]  # the window is full
    engine.tick(published)
    assert len(bodies(published, "tx")) == 2
    send(engine, hq, TOPICS.terminal_topic("txack"), "txack", {"through": 2}, published, tid=TID)
    engine.tick(published)
    assert [r["seq"] for r in bodies(published, "tx")[-1]["records"]] == [5]
    assert port.outbox_stats().tx_backlog == 3
    clock.advance(11)  # no more acks: everything unacknowledged goes again
    engine.tick(published)
    assert [[r["seq"] for r in b["records"]] for b in bodies(published, "tx")[-2:]] == [[3, 4], [5]]
    send(engine, hq, TOPICS.terminal_topic("txack"), "txack", {"through": 5}, published, tid=TID)
    assert port.outbox_stats().tx_backlog == 0


def test_batches_sent_before_hq_showed_up_go_again_soon_after_it_does(
    tmp_path: Path, port: StoreSyncPort, hq: Signer, clock: Clock, published: Published
) -> None:
    engine = draining_engine(tmp_path, port, hq, clock, records=4, tx_batch=2, tx_window=2)
    engine.on_connected(published)
    engine.tick(published)  # published while HQ was not subscribed: nobody got them
    assert len(bodies(published, "tx")) == 2
    clock.advance(0.5)
    send(engine, hq, TOPICS.head, "head", head(0, NOW), published)  # HQ is there now
    clock.advance(1.0)
    engine.tick(published)
    assert len(bodies(published, "tx")) == 2  # HQ gets its moment to answer
    clock.advance(1.5)
    engine.tick(published)
    again = [[r["seq"] for r in b["records"]] for b in bodies(published, "tx")[2:]]
    assert again == [[1, 2], [3, 4]]  # 3 s after sending, not resend_after's 10
    clock.advance(3)
    engine.tick(published)
    assert len(bodies(published, "tx")) == 4  # once per head: a silent HQ waits resend_after


def test_a_head_while_hq_acknowledges_resends_nothing(
    tmp_path: Path, port: StoreSyncPort, hq: Signer, clock: Clock, published: Published
) -> None:
    engine = draining_engine(tmp_path, port, hq, clock, records=6, tx_batch=2, tx_window=2)
    engine.on_connected(published)
    engine.tick(published)
    send(engine, hq, TOPICS.head, "head", head(0, NOW), published)
    clock.advance(1.0)
    send(engine, hq, TOPICS.terminal_topic("txack"), "txack", {"through": 2}, published, tid=TID)
    engine.tick(published)
    clock.advance(2.5)
    engine.tick(published)
    sent = [[r["seq"] for r in b["records"]] for b in bodies(published, "tx")]
    assert sent == [[1, 2], [3, 4], [5, 6]]


def test_salvaged_records_go_apart_marked_and_leave_when_hq_names_them(
    tmp_path: Path, port: StoreSyncPort, hq: Signer, clock: Clock, published: Published
) -> None:
    engine = draining_engine(tmp_path, port, hq, clock, records=1, tx_batch=2, tx_window=2)
    old = [{**r, "epoch": "old"} for r in port.store.records()]
    salvaged = [dict(r, seq=seq) for seq, r in zip((7, 8, 9), old * 3, strict=True)]
    assert port.store.add_salvaged(salvaged) == 3
    engine.on_connected(published)
    engine.tick(published)
    batches = bodies(published, "tx")
    assert [b.get("salvaged", False) for b in batches] == [False, True]
    assert [r["seq"] for r in batches[1]["records"]] == [7, 8]  # one batch per resend period
    engine.tick(published)
    assert [r["seq"] for r in bodies(published, "tx")[-1]["records"]] == [9]
    ack = {"through": 1, "epoch": port.marks().journal_epoch}
    ack["salvaged"] = {"epoch": "old", "seqs": [7, 8]}
    send(engine, hq, TOPICS.terminal_topic("txack"), "txack", ack, published, tid=TID)
    clock.advance(11)
    engine.tick(published)
    assert [r["seq"] for r in bodies(published, "tx")[-1]["records"]] == [9]  # only 9 again


def test_an_ack_beyond_what_was_sent_never_drops_unsent_records(
    tmp_path: Path, port: StoreSyncPort, hq: Signer, clock: Clock, published: Published
) -> None:
    engine = draining_engine(tmp_path, port, hq, clock, records=25, tx_batch=5, tx_window=1)
    engine.on_connected(published)
    engine.tick(published)
    assert [r["seq"] for r in bodies(published, "tx")[-1]["records"]] == [1, 2, 3, 4, 5]
    # A signed ack (a buggy HQ, a replayed or crafted message) far beyond what was sent.
    ack = {"through": 1_000_000_000}
    send(engine, hq, TOPICS.terminal_topic("txack"), "txack", ack, published, tid=TID)
    assert port.outbox_stats().tx_backlog == 20  # 6..25 were never sent: they stay
    assert port.marks().tx_acked == 5
    for _ in range(4):
        engine.tick(published)
        last = bodies(published, "tx")[-1]["records"][-1]["seq"]
        send(
            engine,
            hq,
            TOPICS.terminal_topic("txack"),
            "txack",
            {"through": last},
            published,
            tid=TID,
        )
    assert port.outbox_stats().tx_backlog == 0
    assert sorted({r["seq"] for b in bodies(published, "tx") for r in b["records"]}) == list(
        range(1, 26)
    )


def test_snapshot_chunks_out_of_order_with_a_duplicate(
    engine: SyncEngine, hq: Signer, published: Published, port: StoreSyncPort
) -> None:
    lines = [json.dumps({"kind": "meta", "tx_through": 0}).encode()]
    for i in range(300):
        lines.append(json.dumps(change(i + 1, "holder.upsert", holder=holder(f"H{i}"))).encode())
        lines.append(json.dumps(change(i + 1, "card.upsert", card=card(i, f"H{i}"))).encode())
    chunks = build_chunks(lines, chunk_bytes=20_000)
    parts = list(chunk_bodies(chunks, snap_id="snap-1", seq=400))
    assert len(parts) > 3
    topic = TOPICS.terminal_topic("snapshot")
    order = [1, 0, 0, *range(2, len(parts))]
    for index in order:
        send(engine, hq, topic, "snapshot", parts[index], published, tid=TID)
    assert port.marks().change_seq == 400
    assert port.marks().snapshot_id == "snap-1"
    view = port.store.door_view(card_number(299), "east-gate", NOW.date())
    assert view.card is not None


def test_corrupt_snapshot_is_discarded_and_asked_again(
    engine: SyncEngine, hq: Signer, published: Published, port: StoreSyncPort
) -> None:
    lines = [json.dumps(change(1, "holder.upsert", holder=holder("H1"))).encode()]
    parts = list(chunk_bodies(build_chunks(lines), snap_id="s", seq=10))
    parts[0]["sha256"] = "0" * 64
    send(engine, hq, TOPICS.terminal_topic("snapshot"), "snapshot", parts[0], published, tid=TID)
    assert port.marks().change_seq == 0
    assert bodies(published, "resync") == [{"have": 0}]


def test_status_and_will_are_signed_and_retained(engine: SyncEngine, published: Published) -> None:
    engine.publish_status(published)
    topic, payload, retain = published[-1]
    assert topic == TOPICS.terminal_topic("status") and retain
    assert loads_strict(payload)["body"]["online"] is True
    assert loads_strict(engine.death_payload())["body"]["online"] is False


def test_events_go_out_once_each_and_leave_on_hq_ack(
    engine: SyncEngine, hq: Signer, published: Published, port: StoreSyncPort, clock: Clock
) -> None:
    event_id = port.store.record_event(
        SecurityEvent("door_forced", {"seconds": 12}), at="2026-11-23T09:00:00+08:00", door="east"
    )
    engine.on_connected(published)
    engine.tick(published)
    engine.tick(published)  # not again before the resend timeout
    sent = bodies(published, "event")
    assert [(e["event_id"], e["type"], e["door"], e["detail"]) for e in sent] == [
        (event_id, "door_forced", "east", {"seconds": 12})
    ]
    clock.advance(31)
    engine.tick(published)
    assert len(bodies(published, "event")) == 2  # no ack: sent again
    ack = {"through": 0, "events": [event_id]}
    send(engine, hq, TOPICS.terminal_topic("txack"), "txack", ack, published, tid=TID)
    assert port.outbox_stats().event_backlog == 0


def test_a_message_no_check_foresaw_is_rejected_but_a_store_failure_is_retried(
    engine: SyncEngine, hq: Signer, published: Published, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(envelope: object, publish: object) -> None:
        raise KeyError("a case nobody checked")

    monkeypatch.setattr(engine, "_on_head", broken)
    send(engine, hq, TOPICS.head, "head", head(0), published)  # counted, not raised
    assert engine.rejected["bad_body"] == 1

    def full_disk(envelope: object, publish: object) -> None:
        raise StoreError("database or disk is full")

    monkeypatch.setattr(engine, "_on_head", full_disk)
    with pytest.raises(StoreError):  # the link drops and the broker delivers it again
        send(engine, hq, TOPICS.head, "head", head(0), published)


def test_a_clock_in_beijing_time_stamps_the_outbox_in_utc(
    tmp_path: Path, port: StoreSyncPort, hq: Signer, clock: Clock, published: Published
) -> None:
    # The outbox wrote a local time with a Z after it: eight hours late, so records were sent
    # again (or not) at the wrong moment. Every time goes through models.timefmt now.
    clock.now = NOW.astimezone(timezone(timedelta(hours=8)))
    engine = draining_engine(tmp_path, port, hq, clock, records=1, tx_batch=10, tx_window=1)
    engine.on_connected(published)
    engine.tick(published)
    with port.store.read() as conn:
        (sent_at,) = conn.execute("SELECT last_sent_at FROM outbox").fetchone()
    assert sent_at == "2026-11-23T01:00:00Z"


def test_faces_turned_back_on_ask_for_and_take_a_whole_snapshot(
    engine: SyncEngine, hq: Signer, published: Published, port: StoreSyncPort
) -> None:
    # HQ sends a face once: dropped while faces were off, it can only come back in a snapshot,
    # one at the very seq the terminal already has.
    template = base64.b64encode(Template.of("dlib-resnet-v1", [0.6, 0.8, 0.0]).to_bytes()).decode()
    site = [
        change(1, "holder.upsert", holder=holder("H1")),
        change(2, "face.upsert", holder_id="H1", model="dlib-resnet-v1", template=template),
    ]
    faces_off = StoreSyncPort(port.store, TID, keeping=Keeping(faces=False))
    parsed = parse_batch(batch(site))
    faces_off.apply_batch(parsed.first, parsed.last, parsed.changes)
    assert port.store.state(DROPPED_FACES) is not None and port.marks().change_seq == 2

    engine.on_connected(published)
    send(engine, hq, TOPICS.head, "head", head(2), published)
    assert bodies(published, "resync") == [{"have": 0}]
    lines = [json.dumps({"kind": "meta", "tx_through": 0}).encode()]
    lines += [json.dumps(c).encode() for c in site]
    for part in chunk_bodies(build_chunks(lines), snap_id="s2", seq=2):
        send(engine, hq, TOPICS.terminal_topic("snapshot"), "snapshot", part, published, tid=TID)
    assert port.marks().snapshot_id == "s2"
    assert port.store.state(DROPPED_FACES) is None
    with port.store.read() as conn:
        assert conn.execute("SELECT count(*) FROM face_templates").fetchone() == (1,)
    send(engine, hq, TOPICS.head, "head", head(2), published)
    assert bodies(published, "resync") == [{"have": 0}]  # nothing more to ask for
