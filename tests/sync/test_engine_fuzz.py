"""Whatever arrives, the engine neither crashes nor applies anything it should not."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.engine import SyncEngine
from sync.envelope import Signer
from sync.keys import key_id, load_or_create
from sync.topics import Topics
from terminal.store import Store
from terminal.store.sync_port import StoreSyncPort
from tests.sync.conftest import Published
from tests.sync.messages import SITE, TID, hq_signer
from tests.sync.messages import settings as sync_settings

HQ = hq_signer(1)
TOPICS = Topics("ykt/v1", SITE, TID)
INBOUND = [TOPICS.head, TOPICS.changes, TOPICS.deny] + [
    TOPICS.terminal_topic(n) for n in ("snapshot", "cmd", "txack")
]
scalars = st.none() | st.booleans() | st.integers(-5, 10**6) | st.text(max_size=12)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "seq": st.integers(-1, 50),
        "from": st.integers(-1, 50),
        "to": st.integers(-1, 50),
        "changes": st.lists(values, max_size=3),
        "cards": st.lists(values, max_size=2),
        "name": st.sampled_from(["open", "status", "resync", "x"]),
        "expires": st.text(max_size=25),
        "through": st.integers(-1, 10),
        "snap": st.text(max_size=5),
        "i": st.integers(-1, 3),
        "n": st.integers(-1, 3),
        "data": st.text(max_size=20),
    },
)


def make_engine(tmp: Path) -> tuple[SyncEngine, StoreSyncPort]:
    store = Store.open(tmp / "terminal.db")
    port = StoreSyncPort(store, TID)
    conf = sync_settings(tmp, HQ)
    key = load_or_create(conf.key_file)
    return SyncEngine(conf, port, Signer(key_id(key.public_key()), key)), port


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(INBOUND), st.binary(max_size=400))
def test_garbage_is_counted_never_raised(tmp_path: Path, topic: str, payload: bytes) -> None:
    engine, port = make_engine(tmp_path / str(abs(hash((topic, payload)))))
    try:
        engine.handle(topic, payload, Published())
        assert sum(engine.rejected.values()) == 1
        assert port.marks().change_seq == 0
    finally:
        port.store.close()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(INBOUND), bodies)
def test_signed_nonsense_never_breaks_the_engine(tmp_path: Path, topic: str, body: dict) -> None:
    engine, port = make_engine(tmp_path / str(abs(hash((topic, repr(body))))))
    msg_type = topic.rsplit("/", 1)[-1]
    try:
        engine.handle(topic, HQ.seal(msg_type, SITE, body, tid=TID), Published())
        with port.store.read() as conn:
            cards = conn.execute("SELECT count(*) FROM cards").fetchone()[0]
        # Bodies here carry no valid card: whatever was accepted, no card appeared from nowhere.
        assert cards == 0
    finally:
        port.store.close()


# A lone surrogate is valid JSON but no UTF-8: it broke the signature check itself, the error
# dropped the link, the broker redelivered it, and so on for ever (a poison message).
POISONS = [
    b'{"v":1,"type":"head","site":"%s","id":"\\ud800","ts":"2026-11-23T09:00:00Z",'
    b'"kid":"%s","body":{},"sig":"AAAA"}' % (SITE.encode(), HQ.kid.encode()),
    b'{"v":1,"type":"deny","site":"%s","id":"m1","ts":"2026-11-23T09:00:00Z",'
    b'"kid":"%s","body":{"seq":1,"cards":["\\udfff"]},"sig":"AAAA"}'
    % (SITE.encode(), HQ.kid.encode()),
]


def test_a_poison_message_is_a_counted_rejection_on_every_topic(tmp_path: Path) -> None:
    engine, port = make_engine(tmp_path)
    try:
        for topic in INBOUND:
            for poison in POISONS:
                engine.handle(topic, poison, Published())
        assert sum(engine.rejected.values()) == len(INBOUND) * len(POISONS)
        assert port.marks().change_seq == 0
    finally:
        port.store.close()
