"""HQ-side messages for the sync tests: a signing key, bodies, batches, heads."""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync.envelope import Signer, public_key_b64
from sync.keys import key_id
from sync.settings import SyncSettings

SITE = "nc-admin"
TID = "gate-01"
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def card_number(n: int) -> str:
    return f"3601002026{n:010d}"


def hq_signer(seed: int = 1) -> Signer:
    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    return Signer(key_id(key.public_key(), "hq-"), key)


def settings(tmp_path: Path, signer: Signer, **extra: Any) -> SyncSettings:
    values: dict[str, Any] = {
        "tid": TID,
        "site": SITE,
        "key_file": tmp_path / "terminal-sync.key",
        "hq_keys": {signer.kid: public_key_b64(signer.public_key)},
    } | extra
    return SyncSettings(**values)


def holder(hid: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": hid,
        "name": "李娜",
        "unit": "市政府",
        "dept": "办公厅",
        "class": "red",
        "status": "active",
        "valid_from": "2026-01-01",
        "valid_until": "2027-12-31",
        "groups": ["staff"],
        "canteens": ["c1"],
        "services": ["meal", "shop"],
        "require_face": False,
        "qr_keys": [],
    } | fields


def card(n: int, hid: str, status: str = "active", **fields: Any) -> dict[str, Any]:
    return {
        "number": card_number(n),
        "holder_id": hid,
        "issue_seq": 1,
        "class": "red",
        "status": status,
        "valid_from": "2026-01-01",
        "valid_until": "2027-12-31",
        "status_since": "2026-01-01T00:00:00Z",
    } | fields


def group(gid: str = "staff", doors: Iterable[str] = ("east-gate",)) -> dict[str, Any]:
    return {
        "id": gid,
        "doors": list(doors),
        "windows": [{"days": [1, 2, 3, 4, 5], "from": "07:00", "to": "20:00"}],
        "calendar": "cn",
    }


def ledger(entry_id: str, account: str, delta: int, after: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": entry_id,
        "account": account,
        "purse": "cash",
        "delta": delta,
        "balance_after": after,
        "reason": "topup",
        "at": "2026-11-23T01:00:00Z",
    } | fields


def change(seq: int, kind: str, **body: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": kind} | body


def batch(changes: list[dict[str, Any]], first: int | None = None, last: int | None = None) -> dict:
    return {
        "from": first if first is not None else changes[0]["seq"],
        "to": last if last is not None else changes[-1]["seq"],
        "changes": changes,
    }


def head(seq: int, issued: datetime = NOW, ttl: int = 300) -> dict[str, Any]:
    return {
        "seq": seq,
        "issued": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "expires": (issued + timedelta(seconds=ttl)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def seal(signer: Signer, msg_type: str, body: Mapping[str, Any], **kw: Any) -> bytes:
    return signer.seal(msg_type, SITE, body, **kw)
