"""The KeyStore contract (tests/contract/keystore_contract.py) on the software key store, loaded
from a key file, and on the PSAM key store over the emulated PSAM in process (no pcscd)."""

from pathlib import Path

import pytest

from devtools.cardemu.sam import EmulatedSam
from drivers.keystore import KeyStore, PsamKeyStore, SoftwareKeyStore
from tests.contract.keystore_contract import (
    MASTER_KEYS,
    CountingTransport,
    KeyStoreContract,
    KeyStoreHarness,
)
from tests.factories import InProcessSam


class SoftwareHarness:
    sends_commands = False

    def __init__(self, key_file: Path) -> None:
        self.keystore: KeyStore = SoftwareKeyStore.from_file(key_file)

    def sent(self) -> int:
        return 0


class InProcessSamHarness:
    sends_commands = True

    def __init__(self, *, chain: bool) -> None:
        self.transport = CountingTransport(InProcessSam(EmulatedSam(MASTER_KEYS, chain=chain)))
        self.keystore: KeyStore = PsamKeyStore(self.transport)

    def sent(self) -> int:
        return self.transport.count


class TestSoftwareKeyStore(KeyStoreContract):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> KeyStoreHarness:
        path = tmp_path / "keys.toml"
        lines = [f'{kid} = "{key.hex().upper()}"' for kid, key in MASTER_KEYS.items()]
        path.write_text("[master_keys]\n" + "\n".join(lines) + "\n")
        path.chmod(0o600)
        return SoftwareHarness(path)


class TestPsamKeyStoreInProcess(KeyStoreContract):
    @pytest.fixture(params=["plain", "chained"])
    def harness(self, request: pytest.FixtureRequest) -> KeyStoreHarness:
        # "chained": the SAM answers 61xx and the key store fetches with GET RESPONSE.
        return InProcessSamHarness(chain=request.param == "chained")
