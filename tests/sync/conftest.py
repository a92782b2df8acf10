from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.envelope import Signer
from terminal.store import Store
from terminal.store.sync_port import StoreSyncPort
from tests.sync.broker import Broker
from tests.sync.messages import TID, hq_signer


class Published(list[tuple[str, bytes, bool]]):
    """What the engine published, in order."""

    def __call__(self, topic: str, payload: bytes, retain: bool) -> None:
        self.append((topic, payload, retain))

    def topics(self) -> list[str]:
        return [topic.rsplit("/", 1)[-1] for topic, _, _ in self]


@pytest.fixture
def hq() -> Signer:
    return hq_signer(1)


@pytest.fixture
def port(tmp_path: Path) -> Iterator[StoreSyncPort]:
    store = Store.open(tmp_path / "terminal.db")
    yield StoreSyncPort(store, TID)
    store.close()


@pytest.fixture
def published() -> Published:
    return Published()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free loopback port, for this test only."""
    (tmp_path / "broker").mkdir()
    running = Broker(tmp_path / "broker")
    running.start()
    yield running
    running.stop()
