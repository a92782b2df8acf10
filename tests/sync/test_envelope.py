"""Envelopes: canonical form, signatures, and every reason a message is refused."""

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.canonical import canonical_json
from sync.envelope import (
    PROTOCOL_MAJOR,
    Rejected,
    Rejection,
    open_envelope,
)
from tests.sync.messages import SITE, TID, hq_signer

HQ = hq_signer(1)
OTHER = hq_signer(2)
KEYS = {HQ.kid: HQ.public_key}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


def refused(payload: bytes, **kw: object) -> Rejection:
    with pytest.raises(Rejected) as info:
        open_envelope(payload, KEYS, site=SITE, tid=TID, **kw)  # type: ignore[arg-type]
    return info.value.reason


def tamper(payload: bytes, **changes: object) -> bytes:
    data = json.loads(payload)
    data.update(changes)
    return json.dumps(data).encode()


@given(bodies)
def test_round_trip_keeps_the_body(body: dict) -> None:
    envelope = open_envelope(HQ.seal("changes", SITE, body), KEYS, site=SITE, tid=TID)
    assert envelope.body == body
    assert envelope.v == PROTOCOL_MAJOR
    assert envelope.kid == HQ.kid


@given(bodies, st.data())
def test_any_changed_byte_is_refused(body: dict, data: st.DataObject) -> None:
    payload = bytearray(HQ.seal("changes", SITE, body))
    index = data.draw(st.integers(0, len(payload) - 1))
    payload[index] = (payload[index] + data.draw(st.integers(1, 255))) % 256
    try:
        envelope = open_envelope(bytes(payload), KEYS, site=SITE, tid=TID)
    except Rejected:
        return
    # The only edits that survive change nothing signed: e.g. escaping a character differently.
    assert envelope.body == body


@given(st.binary(max_size=300))
def test_random_bytes_are_refused_never_crash(payload: bytes) -> None:
    with pytest.raises(Rejected):
        open_envelope(payload, KEYS, site=SITE, tid=TID)


@given(bodies)
def test_signature_by_another_key_under_our_kid_is_refused(body: dict) -> None:
    forged = json.loads(OTHER.seal("changes", SITE, body))
    forged["kid"] = HQ.kid
    del forged["sig"]
    forged["sig"] = base64.b64encode(OTHER._key.sign(canonical_json(forged))).decode()
    assert refused(json.dumps(forged).encode()) is Rejection.BAD_SIG


def test_each_refusal_reason() -> None:
    good = HQ.seal("changes", SITE, {"a": 1})
    assert refused(good, max_bytes=10) is Rejection.OVERSIZE
    assert refused(b"{not json") is Rejection.NOT_JSON
    assert refused(b"[1, 2]") is Rejection.NOT_OBJECT
    assert refused(tamper(good, v=2)) is Rejection.UNKNOWN_VERSION
    assert refused(tamper(good, v="1")) is Rejection.BAD_FIELD
    assert refused(tamper(good, site="elsewhere")) is Rejection.WRONG_SITE
    assert refused(tamper(good, tid="gate-99")) is Rejection.WRONG_TERMINAL
    assert refused(tamper(good, kid="nobody")) is Rejection.UNKNOWN_KID
    assert refused(tamper(good, body={"a": 2})) is Rejection.BAD_SIG
    assert refused(tamper(good, sig="!!")) is Rejection.BAD_FIELD
    assert refused(tamper(good, type="cmd"), types=frozenset({"changes"})) is Rejection.WRONG_TYPE
    unsigned = json.loads(good)
    del unsigned["sig"]
    assert refused(json.dumps(unsigned).encode()) is Rejection.MISSING_SIG
    missing = json.loads(good)
    del missing["ts"]
    assert refused(json.dumps(missing).encode()) is Rejection.MISSING_FIELD


def test_floats_and_duplicate_keys_are_refused() -> None:
    good = HQ.seal("changes", SITE, {"a": 1})
    assert refused(good.replace(b'"a":1', b'"a":1.0')) is Rejection.NOT_JSON
    assert refused(good.replace(b'"a":1', b'"a":1,"a":2')) is Rejection.NOT_JSON
    assert refused(good.replace(b'"a":1', b'"a":NaN')) is Rejection.NOT_JSON
    with pytest.raises(TypeError):
        HQ.seal("changes", SITE, {"amount": 1.5})


def test_terminal_messages_must_name_the_terminal() -> None:
    unsigned_tid = HQ.seal("tx", SITE, {"records": []})
    with pytest.raises(Rejected) as info:
        open_envelope(unsigned_tid, KEYS, site=SITE, tid=TID, require_tid=True)
    assert info.value.reason is Rejection.MISSING_FIELD
    ok = open_envelope(HQ.seal("tx", SITE, {}, tid=TID), KEYS, site=SITE, tid=TID, require_tid=True)
    assert ok.tid == TID


def test_signer_repr_hides_the_key() -> None:
    assert "kid" in repr(HQ) and "PrivateKey" not in repr(HQ)


@given(
    st.sampled_from(["id", "ts", "kid", "site", "body"]),
    st.integers(0xD800, 0xDFFF),
)
def test_a_lone_surrogate_anywhere_is_a_rejection_not_an_error(field: str, code: int) -> None:
    # Valid JSON, but no text: it cannot be encoded, so it cannot have been signed.
    payload = HQ.seal("head", SITE, {"seq": 1})
    escaped = f"\\u{code:04x}"
    data = json.loads(payload)
    if field == "body":
        data["body"]["note"] = "x"
        text = json.dumps(data).replace('"x"', f'"{escaped}"')
    else:
        text = json.dumps(data).replace(f'"{field}": "', f'"{field}": "{escaped}', 1)
    assert refused(text.encode()) in set(Rejection)
