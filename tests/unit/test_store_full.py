"""A full database (SQLite's own "database or disk is full", made real with max_page_count):
decisions are refused, counted as the store-failure state diag reports, and the state clears
with the first commit that succeeds again."""

from models.errors import StoreError
from models.journal import TransactionDraft
from models.reasons import Reason
from terminal.diag import commands
from terminal.store import Store


def draft() -> TransactionDraft:
    return TransactionDraft(
        "door", "2026-11-23T09:00:00Z", 0, "card", "deny", Reason.CARD_UNKNOWN, 0, card="x" * 400
    )


def test_refused_commits_are_counted_and_clear_when_space_returns(store: Store) -> None:
    store.commit(draft())
    with store.read() as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
    refused = 0
    for _ in range(200):
        try:
            store.commit(draft())
        except StoreError as exc:
            assert "full" in str(exc)
            refused += 1
    assert refused and store.failures == refused and store.failing_since is not None
    assert "full" in store.last_failure
    status = {
        "daemon": {"running": True},
        "database": {"schema_version": 5, "schema_latest": 5, "store_failed": {
            "refused": store.failures, "since": "2026-11-23T09:00:00Z", "error": store.last_failure,
        }},
        "disk": {"free_bytes": 10**9, "free_pct": 50.0},
    }  # fmt: skip
    level, problems = commands.assess(status)
    assert str(level) == "failed" and problems[0].startswith(f"store: {refused} taps refused")
    with store.read() as conn:
        conn.execute(f"PRAGMA max_page_count = {pages * 100}")
    store.commit(draft())
    assert store.failures == 0 and store.failing_since is None
    assert store.verify_journal() is None
