"""Fixtures for the real PC/SC path: pyscard -> pcscd -> vpcd -> card/PSAM emulator processes.

pcscd, the machine lock and the emulator processes come from :mod:`devtools.cardemu.harness`,
which the benchmark shares; these fixtures turn its errors into test failures that say what to
install. Emulators run as subprocesses so a stuck exchange never hangs the test process.
"""

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devtools.cardemu import harness
from devtools.cardemu.harness import CARD_PORT, CARD_READER, POLL_SETTLE, SAM_PORT, SAM_READER
from drivers.pcsc import PcscCardReader, PcscSettings, SoftwareKeyStoreSettings

MASTER_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
ISSUER_ID = "5943484E00000001"
CARD_NUMBER = "31000000000000012345"
LOCK_WAIT = 90.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="package")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Pcscd]:
    log = tmp_path_factory.mktemp("pcscd") / "pcscd.log"
    try:
        with harness.machine_lock(LOCK_WAIT):
            daemon = harness.ensure_pcscd(log)
            try:
                yield daemon
            finally:
                if daemon.owned:
                    daemon.stop()
    except harness.HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="package")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.toml"
    path.write_text(f'[master_keys]\n1 = "{MASTER_KEY}"\n')
    path.chmod(0o600)
    return path


@dataclass
class Emulators:
    """Starts card and PSAM emulators; everything still running is killed at teardown."""

    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    card_number: str = CARD_NUMBER
    master_key: str = MASTER_KEY
    issuer_id: str = ISSUER_ID
    card_reader: str = CARD_READER
    sam_reader: str = SAM_READER
    logs: dict[int, Path] = field(default_factory=dict)

    def _start(self, kind: str, port: int, args: list[str]) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"{kind}-{len(self.processes)}.log"
        process = harness.start_emulator(kind, port, args, log)
        self.processes.append(process)
        self.logs[process.pid] = log
        return process

    def wait_in_field(self, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        """Until the emulator is connected to vpcd and pcscd has polled the slot once since."""
        deadline = time.monotonic() + timeout
        log = self.logs[process.pid]
        while "in the field of vpcd" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"emulator not in the field; its log:\n{log.read_text()}")
            time.sleep(0.05)
        time.sleep(POLL_SETTLE)

    def card(self, *args: str, genuine_data: bool = True) -> subprocess.Popen[bytes]:
        """A card with the test number and issuer, diversified from the test master key."""
        base = ["--number", CARD_NUMBER, "--issuer-id", ISSUER_ID, "--master-key", MASTER_KEY]
        return self._start("card", CARD_PORT, [*(base if genuine_data else []), *args])

    def sam(self, *args: str) -> subprocess.Popen[bytes]:
        return self._start("sam", SAM_PORT, ["--key", f"1={MASTER_KEY}", *args])

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        harness.stop_process(process)

    def kill_all(self) -> None:
        running = [p for p in self.processes if p.poll() is None]
        for process in running:
            self.kill(process)
        if running:
            # Let pcscd notice the empty slots before the next test's reader looks at them.
            time.sleep(POLL_SETTLE)


@pytest.fixture
def emulators(pcscd: harness.Pcscd, tmp_path: Path) -> Iterator[Emulators]:
    if pcscd.owned and pcscd.process is None:
        pcscd.start()  # a failed restart test must not take the other tests down with it
    emus = Emulators(log_dir=tmp_path)
    yield emus
    emus.kill_all()


@pytest.fixture
def make_reader(pcscd: harness.Pcscd, key_file: Path) -> Iterator[Callable[..., PcscCardReader]]:
    readers: list[PcscCardReader] = []

    def make(**overrides: Any) -> PcscCardReader:
        settings: dict[str, Any] = {
            "driver": "pcsc",
            "reader_pattern": CARD_READER,
            "key_store": SoftwareKeyStoreSettings(type="software", key_file=f"file:{key_file}"),
            "reconnect_max_seconds": 0.5,
        }
        settings.update(overrides)
        reader = PcscCardReader(PcscSettings(**settings))
        readers.append(reader)
        return reader

    yield make
    # An open PC/SC connection at interpreter exit can hang the process: close explicitly.
    for reader in readers:
        reader.close()
