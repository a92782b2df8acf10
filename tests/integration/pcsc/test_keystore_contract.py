"""The KeyStore contract (tests/contract/keystore_contract.py) on the PSAM key store as the
terminal builds it (drivers/pcsc/reader.py): a PSAM :class:`~drivers.pcsc.slot.Slot` through
pyscard, a real pcscd and vpcd, with the PSAM emulator process in the second vpcd slot."""

from collections.abc import Iterator

import pytest

from drivers.keystore import KeyStore, PsamKeyStore
from drivers.pcsc.slot import Slot
from tests.contract.keystore_contract import (
    MASTER_KEYS,
    CountingTransport,
    KeyStoreContract,
    KeyStoreHarness,
)
from tests.integration.pcsc.conftest import Emulators

APDU_TIMEOUT = 2.0  # generous: two CPUs, and pcscd polls every 400 ms


class PcscSamHarness:
    sends_commands = True

    def __init__(self, sam_reader: str) -> None:
        self.slot = Slot("psam", APDU_TIMEOUT, sam_reader)
        self.transport = CountingTransport(self.slot)
        self.keystore: KeyStore = PsamKeyStore(self.transport)

    def sent(self) -> int:
        return self.transport.count

    def close(self) -> None:
        self.slot.close()


class TestPsamKeyStoreThroughPcscd(KeyStoreContract):
    @pytest.fixture(params=["plain", "chained"])
    def harness(
        self, request: pytest.FixtureRequest, emulators: Emulators
    ) -> Iterator[KeyStoreHarness]:
        keys = [arg for kid, key in MASTER_KEYS.items() for arg in ("--key", f"{kid}={key.hex()}")]
        chain = ["--chain"] if request.param == "chained" else []
        # The fixture's own --key 1=... is the same key 1 as the contract's.
        emulators.wait_in_field(emulators.sam(*keys, *chain))
        made = PcscSamHarness(emulators.sam_reader)
        yield made
        # An open PC/SC connection at interpreter exit can hang the process: close explicitly.
        made.close()
