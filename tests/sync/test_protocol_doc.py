"""docs/protocol.md and the code agree: every topic, message type, change kind, rule type and
command the document lists is implemented, and everything implemented is documented."""

import re
from pathlib import Path

import pytest

import devtools.hq.server
from sync.changes import RULE_TYPES, UnknownChange, parse_change
from sync.engine import ENGINE_COMMANDS, TERMINAL_COMMANDS, SyncEngine
from sync.envelope import Rejected, Rejection
from sync.topics import HQ_TO_TERMINAL, SITE_TOPICS, TERMINAL_TO_HQ

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = DOC.index(f"\n## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end > 0 else None]


def _topic_rows() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in _section("Topics").splitlines():
        match = re.match(r"\| `\{p\}/\{site\}/(?:\{tid\}/)?(\w+)` \| (.+?) \| `(\w+)` \|", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_every_topic_in_the_doc_is_in_the_code_and_back() -> None:
    rows = _topic_rows()
    code = {**SITE_TOPICS, **HQ_TO_TERMINAL, **TERMINAL_TO_HQ}
    assert {name: kind for name, (_, kind) in rows.items()} == code
    for name, (direction, _) in rows.items():
        assert (name in TERMINAL_TO_HQ) == direction.startswith("terminal")


def test_every_message_type_has_a_handler() -> None:
    for name, kind in {**SITE_TOPICS, **HQ_TO_TERMINAL}.items():
        assert callable(getattr(SyncEngine, f"_on_{kind}", None)), name
    server_source = Path(devtools.hq.server.__file__).read_text(encoding="utf-8")
    for kind in TERMINAL_TO_HQ.values():
        assert f'name == "{kind}"' in server_source, kind


@pytest.mark.parametrize(
    "kind",
    sorted(
        set(re.findall(r"\*\*`([a-z]+(?:\.[a-z]+)?)`\*\*", _section("Change log (HQ → terminals)")))
    ),
)
def test_every_documented_change_kind_is_parsed(kind: str) -> None:
    try:
        parsed = parse_change({"seq": 1, "kind": kind})
    except Rejected as exc:  # known kind, fields missing: that is the parser for it
        assert exc.reason is Rejection.BAD_BODY
    else:
        assert not isinstance(parsed, UnknownChange), kind


def _table_after(header: str) -> list[str]:
    lines = DOC[DOC.index(header) :].splitlines()[2:]
    names = []
    for line in lines:
        if not line.startswith("| `"):
            break
        names.append(line.split("`")[1])
    return names


def test_rule_types_and_commands_match() -> None:
    assert set(_table_after("| type | fields |")) == RULE_TYPES
    assert set(_table_after("| name | args | does |")) == ENGINE_COMMANDS | TERMINAL_COMMANDS
