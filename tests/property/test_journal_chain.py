import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import Reason
from models.canonical import ZERO_HASH, canonical_json
from models.journal import TransactionDraft, seal, verify_chain

drafts = st.builds(
    TransactionDraft,
    kind=st.sampled_from(("door", "passage")),
    at=st.just("2026-11-23T01:00:00.000Z"),
    mono_ns=st.integers(0, 2**62),
    credential=st.just("card"),
    decision=st.sampled_from(("allow", "deny")),
    reason=st.sampled_from(Reason),
    view_seq=st.integers(0, 10**9),
    card=st.none() | st.text(alphabet="0123456789", min_size=20, max_size=20),
    holder_id=st.none() | st.text(min_size=1, max_size=8),
    amount=st.none() | st.integers(0, 10**7),
    used=st.none() | st.booleans(),
)


def chain(items: list[TransactionDraft]) -> list[dict[str, Any]]:
    records, prev = [], ZERO_HASH
    for seq, draft in enumerate(items, start=1):
        record = seal(draft, seq=seq, tx_id=f"tx-{seq}", prev_hash=prev)
        records.append(record)
        prev = record["hash"]
    return records


@given(st.lists(drafts, min_size=1, max_size=8))
def test_sealed_chain_verifies(items: list[TransactionDraft]) -> None:
    assert verify_chain(chain(items)) is None


@given(st.lists(drafts, min_size=1, max_size=8), st.data())
def test_any_edit_breaks_the_chain(items: list[TransactionDraft], data: st.DataObject) -> None:
    records = chain(items)
    victim = data.draw(st.integers(0, len(records) - 1))
    field = data.draw(st.sampled_from(sorted(records[victim])))
    tampered = copy.deepcopy(records)
    original = tampered[victim][field]
    replacement = data.draw(
        st.one_of(st.integers(), st.text(), st.booleans()).filter(lambda v: v != original)
    )
    tampered[victim][field] = replacement
    broken = verify_chain(tampered)
    assert broken is not None
    assert broken.seq <= victim + 1


@given(st.lists(drafts, min_size=2, max_size=8), st.data())
def test_deleting_or_reordering_breaks_the_chain(
    items: list[TransactionDraft], data: st.DataObject
) -> None:
    records = chain(items)
    victim = data.draw(st.integers(0, len(records) - 2))
    assert verify_chain(records[:victim] + records[victim + 1 :]) is not None
    swapped = records[:]
    swapped[victim], swapped[victim + 1] = swapped[victim + 1], swapped[victim]
    assert verify_chain(swapped) is not None


def test_floats_are_refused_in_canonical_records() -> None:
    with pytest.raises(TypeError, match="float"):
        canonical_json({"amount": 12.5})
