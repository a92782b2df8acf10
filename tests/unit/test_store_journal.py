import json
import threading
from datetime import date

from models import Reason
from models.canonical import ZERO_HASH
from models.journal import TransactionDraft
from terminal.store import SecurityEvent, Store
from terminal.store.allowlist import card_row, holder_row, upsert_cards, upsert_holders
from tests.factories import MONDAY_9, card, holder


def draft(reason: Reason = Reason.ALLOWED, **fields: object) -> TransactionDraft:
    values: dict[str, object] = {
        "kind": "door",
        "at": "2026-11-23T01:00:00.000Z",
        "mono_ns": 1,
        "credential": "card",
        "decision": "allow" if reason is Reason.ALLOWED else "deny",
        "reason": reason,
        "view_seq": 0,
        "card": "36010020260000000001",
    } | fields
    return TransactionDraft(**values)  # type: ignore[arg-type]


def test_commit_assigns_gap_free_seq_and_links_hashes(store: Store) -> None:
    first = store.commit(draft())
    second = store.commit(draft(Reason.CARD_LOST))
    assert (first.seq, second.seq) == (1, 2)
    records = store.records()
    assert records[0]["prev_hash"] == ZERO_HASH
    assert records[1]["prev_hash"] == first.hash
    assert store.verify_journal() is None


def test_every_commit_is_queued_for_upload_with_its_event(store: Store) -> None:
    store.commit(draft())
    store.commit(draft(Reason.CARD_LOST), SecurityEvent("lost_card_used", {"reason": "card_lost"}))
    with store.read() as conn:
        outbox = conn.execute("SELECT topic, ref FROM outbox ORDER BY topic, ref").fetchall()
        events = conn.execute("SELECT type, tx_seq FROM events").fetchall()
    assert outbox == [("event", 1), ("tx", 1), ("tx", 2)]
    assert events == [("lost_card_used", 2)]


def test_ids_are_unique_time_ordered_uuids(store: Store) -> None:
    ids = [store.commit(draft()).id for _ in range(20)]
    assert len(set(ids)) == 20
    assert all(i[14] == "7" for i in ids)  # UUID version 7
    assert ids == sorted(ids)


def test_chain_continues_after_reopening(tmp_path: object) -> None:
    path = tmp_path / "t.db"  # type: ignore[operator]
    s = Store.open(path)
    s.commit(draft())
    s.close()
    s = Store.open(path)
    assert s.commit(draft()).seq == 2
    assert s.verify_journal() is None
    s.close()


def test_editing_a_record_in_sqlite_is_detected(store: Store) -> None:
    for _ in range(3):
        store.commit(draft())
    with store.write() as conn:
        text = conn.execute("SELECT record FROM journal WHERE seq = 2").fetchone()[0]
        record = json.loads(text)
        record["reason"] = "card_lost"
        conn.execute("UPDATE journal SET record = ? WHERE seq = 2", (json.dumps(record),))
    broken = store.verify_journal()
    assert broken is not None and broken.seq == 2


def test_editing_an_indexed_column_is_detected(store: Store) -> None:
    store.commit(draft(Reason.CARD_LOST))
    with store.write() as conn:
        conn.execute("UPDATE journal SET decision = 'allow' WHERE seq = 1")
    broken = store.verify_journal()
    assert broken is not None and broken.seq == 1


def test_deleting_a_record_is_detected(store: Store) -> None:
    for _ in range(3):
        store.commit(draft())
    with store.write() as conn:
        conn.execute("DELETE FROM outbox")
        conn.execute("DELETE FROM journal WHERE seq = 2")
    broken = store.verify_journal()
    assert broken is not None and broken.seq == 2


def test_concurrent_commits_stay_gap_free(store: Store) -> None:
    def work() -> None:
        for _ in range(25):
            store.commit(draft())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r["seq"] for r in store.records()] == list(range(1, 101))
    assert store.verify_journal() is None


def test_door_view_reads_what_was_written(store: Store) -> None:
    with store.write() as conn:
        upsert_holders(conn, [holder_row(holder())])
        upsert_cards(conn, [card_row(card(valid_until=date(2027, 1, 1)))])
    view = store.door_view("36010020260000000001", "east-gate", MONDAY_9.date())
    assert view.card == card(valid_until=date(2027, 1, 1))
    assert view.holder == holder()
    assert view.newest_issue_seq == 1
    assert view.groups == ()
    unknown = store.door_view("0" * 20, "east-gate", MONDAY_9.date())
    assert unknown.card is None


def test_view_seq_moves_only_when_the_write_commits(store: Store) -> None:
    with store.write() as conn:
        store.set_state(conn, "change_seq", "5")
    assert store.view_seq == 5
    try:
        with store.write() as conn:
            store.set_state(conn, "change_seq", "9")
            raise RuntimeError("simulated failure mid-batch")
    except RuntimeError:
        pass
    assert store.view_seq == 5
    assert store.state("change_seq") == "5"
