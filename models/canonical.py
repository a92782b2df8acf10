"""Canonical JSON: the byte form that hashes and signatures are computed over.

Keys sorted, no whitespace, UTF-8, and no floats: money is integer fen and scores are integer
thousandths, so a float in a record is a bug that would make two honest parties disagree on a hash.
"""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

ZERO_HASH = "0" * 64


def _reject_floats(value: Any, path: str = "$") -> None:
    if isinstance(value, float):
        raise TypeError(f"float at {path}: canonical records carry integers only")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"non-string key at {path}")
            _reject_floats(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _reject_floats(item, f"{path}[{index}]")


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """Encode ``value`` canonically; raises ``TypeError`` for floats or non-string keys."""
    _reject_floats(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the canonical JSON of ``record`` without its ``hash`` field."""
    body = {key: item for key, item in record.items() if key != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()
