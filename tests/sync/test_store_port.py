"""The store side of the link: batches in order and once, deny priority, ledger, outbox."""

from datetime import date

import pytest

from models.journal import TransactionDraft
from models.reasons import Reason
from sync.changes import parse_batch, parse_change, parse_deny
from sync.port import BatchOutcome, Head, PurseBalance
from terminal.store.sync_port import StoreSyncPort
from tests.sync.messages import TID, batch, card, card_number, change, group, holder, ledger


def apply(port: StoreSyncPort, body: dict) -> BatchOutcome:
    parsed = parse_batch(body)
    return port.apply_batch(parsed.first, parsed.last, parsed.changes)


def card_status(port: StoreSyncPort, n: int) -> str | None:
    with port.store.read() as conn:
        row = conn.execute(
            "SELECT status FROM cards WHERE number = ?", (card_number(n),)
        ).fetchone()
    return None if row is None else row[0]


def seed(port: StoreSyncPort) -> None:
    assert (
        apply(
            port,
            batch(
                [
                    change(1, "group.upsert", group=group()),
                    change(2, "holder.upsert", holder=holder("H1")),
                    change(3, "card.upsert", card=card(1, "H1")),
                    change(
                        4, "holiday.upsert", calendar="cn", holidays=["2027-01-01"], workdays=[]
                    ),
                ]
            ),
        )
        is BatchOutcome.APPLIED
    )


def test_batch_applies_in_one_step_and_moves_the_view(port: StoreSyncPort) -> None:
    seed(port)
    assert port.marks().change_seq == 4
    assert port.store.view_seq == 4
    view = port.store.door_view(card_number(1), "east-gate", date(2026, 11, 23))
    assert view.card is not None and view.holder is not None
    assert [g.id for g in view.groups] == ["staff"]


def test_duplicate_and_gap_change_nothing(port: StoreSyncPort) -> None:
    seed(port)
    assert apply(port, batch([change(3, "card.upsert", card=card(1, "H1", "lost"))])) is (
        BatchOutcome.DUPLICATE
    )
    assert card_status(port, 1) == "active"
    gap = batch([change(6, "card.upsert", card=card(1, "H1", "lost"))], first=6)
    assert apply(port, gap) is BatchOutcome.GAP
    assert card_status(port, 1) == "active"
    assert port.marks().change_seq == 4


def test_overlapping_batch_applies_only_the_new_part(port: StoreSyncPort) -> None:
    seed(port)
    body = batch(
        [
            change(4, "card.upsert", card=card(1, "H1", "frozen")),  # already have 4: skipped
            change(5, "card.upsert", card=card(2, "H1")),
        ]
    )
    assert apply(port, body) is BatchOutcome.APPLIED
    assert card_status(port, 1) == "active"
    assert card_status(port, 2) == "active"


def test_deny_wins_over_older_log_entries_and_is_idempotent(port: StoreSyncPort) -> None:
    seed(port)
    seq, entries = parse_deny({"seq": 9, "cards": [{"number": card_number(1), "status": "lost"}]})
    assert port.apply_deny(seq, entries) == 1
    assert port.apply_deny(seq, entries) == 0
    assert card_status(port, 1) == "lost"
    # The log catches up with entries older than the deny: the card stays lost.
    assert apply(port, batch([change(5, "card.upsert", card=card(1, "H1", "active"))])) is (
        BatchOutcome.APPLIED
    )
    assert card_status(port, 1) == "lost"
    # ...then the deny's own entry, then a newer unlost, which does apply.
    apply(port, batch([change(9, "card.upsert", card=card(1, "H1", "lost"))], first=6))
    apply(port, batch([change(10, "card.upsert", card=card(1, "H1", "active"))]))
    assert card_status(port, 1) == "active"
    # A replayed old deny changes nothing now.
    assert port.apply_deny(seq, entries) == 0
    assert card_status(port, 1) == "active"


def test_deny_for_a_card_not_yet_known_holds_when_it_arrives(port: StoreSyncPort) -> None:
    seed(port)
    port.apply_deny(
        *parse_deny({"seq": 8, "cards": [{"number": card_number(7), "status": "lost"}]})
    )
    apply(port, batch([change(5, "card.upsert", card=card(7, "H1"))]))
    assert card_status(port, 7) == "lost"


def test_ledger_updates_purses_and_clears_own_pending_debit_once(port: StoreSyncPort) -> None:
    seed(port)
    draft = TransactionDraft(
        "meal", "2026-11-23T12:00:00+08:00", 1, "card", "allow", Reason.ALLOWED, 4
    )
    committed = port.store.commit(draft)
    with port.store.write() as conn:
        conn.execute(
            "INSERT INTO pending_debits (tx_id, tx_seq, account, purse, amount, at) "
            "VALUES (?, ?, 'H1', 'cash', 800, '2026-11-23T12:00:00+08:00')",
            (committed.id, committed.seq),
        )
    origin = {"tid": TID, "tx_seq": committed.seq, "tx_id": committed.id}
    entries = [
        change(5, "ledger", entry=ledger("L1", "H1", 10000, 10000)),
        change(6, "ledger", entry=ledger("L2", "H1", -800, 9200, reason="debit", origin=origin)),
    ]
    apply(port, batch(entries))
    apply(port, batch(entries, first=5, last=7))  # a redelivery overlapping: applied once
    with port.store.read() as conn:
        assert conn.execute("SELECT balance FROM purses WHERE account = 'H1'").fetchone()[0] == 9200
        assert conn.execute("SELECT count(*) FROM pending_debits").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 2


def test_head_never_goes_back(port: StoreSyncPort) -> None:
    assert port.accept_head(Head(5, "2026-11-23T01:00:00Z", "2026-11-23T01:05:00Z"))
    assert port.accept_head(Head(5, "2026-11-23T01:00:00Z", "2026-11-23T01:05:00Z"))
    assert not port.accept_head(Head(4, "2026-11-23T01:01:00Z", "2026-11-23T01:06:00Z"))
    assert not port.accept_head(Head(6, "2026-11-23T00:59:00Z", "2026-11-23T01:06:00Z"))
    assert port.accept_head(Head(6, "2026-11-23T01:01:00Z", "2026-11-23T01:06:00Z"))
    assert port.marks().head == Head(6, "2026-11-23T01:01:00Z", "2026-11-23T01:06:00Z")


def test_the_keyset_in_use_is_kept_as_received(port: StoreSyncPort) -> None:
    assert port.keyset() is None
    port.save_keyset(b'{"version":1}', 1)
    port.save_keyset(b'{"version":2,"name":"\xe6\x9d\x8e"}', 2)
    assert port.keyset() == b'{"version":2,"name":"\xe6\x9d\x8e"}'


def test_snapshot_swaps_in_atomically_and_keeps_newer_denies(port: StoreSyncPort) -> None:
    seed(port)
    port.apply_deny(
        *parse_deny({"seq": 60, "cards": [{"number": card_number(2), "status": "lost"}]})
    )
    stage = port.begin_snapshot("s1", 50)
    stage.add([parse_change(change(20, "holder.upsert", holder=holder("H2")))])
    stage.add([parse_change(change(21, "card.upsert", card=card(2, "H2")))])
    stage.add([PurseBalance("H2", "cash", 500, None)])
    # Nothing visible before the commit.
    assert card_status(port, 2) is None and card_status(port, 1) == "active"
    stage.commit(seq=50, snap_id="s1", tx_through=0)
    assert card_status(port, 1) is None  # the snapshot is the whole truth
    assert card_status(port, 2) == "lost"  # the deny at 60 is newer than the snapshot
    marks = port.marks()
    assert (marks.change_seq, marks.snapshot_id) == (50, "s1")
    assert port.store.view_seq == 50


def test_discarded_snapshot_leaves_data_alone(port: StoreSyncPort) -> None:
    seed(port)
    stage = port.begin_snapshot("s1", 50)
    stage.add([parse_change(change(20, "holder.upsert", holder=holder("H2")))])
    stage.discard()
    assert card_status(port, 1) == "active"
    assert port.marks().change_seq == 4


def test_outbox_batches_and_ack(port: StoreSyncPort) -> None:
    for i in range(5):
        port.store.commit(
            TransactionDraft(
                "door", f"2026-11-23T09:00:0{i}+08:00", i, "card", "deny", Reason.CARD_UNKNOWN, 0
            )
        )
    records = port.tx_records(0, 3)
    assert [r["seq"] for r in records] == [1, 2, 3]
    port.mark_tx_sent(1, 3, "2026-11-23T01:00:00Z")
    assert [r["seq"] for r in port.tx_records(3, 10)] == [4, 5]
    assert port.ack_tx(3) == 3
    assert [r["seq"] for r in port.tx_records(0, 10)] == [4, 5]
    assert port.marks().tx_acked == 3
    # HQ cannot hold records it was never sent: an ack beyond them drops nothing more.
    assert port.ack_tx(99) == 0
    assert port.marks().tx_acked == 3
    assert [r["seq"] for r in port.tx_records(0, 10)] == [4, 5]
    port.mark_tx_sent(4, 5, "2026-11-23T01:00:01Z")
    assert port.ack_tx(1_000_000_000) == 2  # and beyond the journal's end, only what it has
    assert port.marks().tx_acked == 5
    assert port.outbox_stats().tx_backlog == 0


def test_commands_are_claimed_once(port: StoreSyncPort) -> None:
    assert port.claim_command("c1", "open", "2026-11-23T01:00:00Z")
    assert not port.claim_command("c1", "open", "2026-11-23T01:00:01Z")


def test_snapshot_keeps_local_face_data_of_holders_that_stay(port: StoreSyncPort) -> None:
    with port.store.read() as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_schema")}
    if "face_templates" not in tables:
        pytest.skip("no on-device face tables in this schema")
    seed(port)
    with port.store.write() as conn:
        conn.execute(
            "INSERT INTO face_templates (holder_id, model, template, source, updated) "
            "VALUES ('H1', 'device-model', x'00000000', 'device', '2026-11-23T01:00:00Z')"
        )
    stage = port.begin_snapshot("s1", 50)
    stage.add([parse_change(change(2, "holder.upsert", holder=holder("H1")))])
    stage.commit(seq=50, snap_id="s1", tx_through=0)
    with port.store.read() as conn:
        kept = conn.execute("SELECT count(*) FROM face_templates WHERE holder_id = 'H1'")
        assert kept.fetchone()[0] == 1
