"""Malformed MQTT messages against the running daemon (bench/faults/mqttfuzz.py): every one
counted as rejected, nothing applied, the link steady; and the signed "wrong type" messages
really are wrong, so the campaign never sends HQ-signed messages that ought to be applied."""

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.faults import mqttfuzz

pytestmark = pytest.mark.integration


@pytest.mark.timeout(120)
def test_fuzzed_messages_are_all_rejected_and_change_nothing(tmp_path: Path) -> None:
    result = mqttfuzz.scenario(messages=600, seed=4, workdir=tmp_path)
    assert result["violations"] == []
    assert result["sent"] == result["rejected"] == 600
    assert result["link_connects"] == 1 and result["connected_at_end"]
    assert result["rejected_by_reason"]["bad_body"] > 0  # signed ones reached the body checks


def _at(body: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        body = body[int(step)] if isinstance(body, list) else body[step]
    return body


@given(st.integers(min_value=0, max_value=2**32))
def test_each_mutation_changes_a_required_field_to_another_type(seed: int) -> None:
    rng = random.Random(seed)
    for name, (body, paths) in mqttfuzz._templates(datetime.now(UTC)).items():
        path = rng.choice(paths)
        before, after = _at(body, path), _at(mqttfuzz._mutated(body, path, rng), path)
        assert type(before) is not type(after), (name, path, before, after)
        assert _at(body, path) == before  # the template itself is left alone
