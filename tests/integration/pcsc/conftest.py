"""Fixtures for the real PC/SC path: pyscard -> pcscd -> vpcd -> card/PSAM emulator processes.

pcscd is started in the foreground when it is not running and stopped again afterwards. vpcd's
slots are fixed ports (35963 for the card, 35964 for the PSAM) that the emulators reach over
loopback; being one per machine, they are taken under a file lock so concurrent test runs take
turns. Emulators run as subprocesses so a stuck exchange never hangs the test process.
"""

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drivers.pcsc import PcscCardReader, PcscSettings, list_readers
from models.errors import DriverError

CARD_READER = "Virtual PCD 00 00"
SAM_READER = "Virtual PCD 00 01"
CARD_PORT = 35963
SAM_PORT = 35964
MASTER_KEY = "2B7E151628AED2A6ABF7158809CF4F3C"
ISSUER_ID = "5943484E00000001"
CARD_NUMBER = "31000000000000012345"

APT_HINT = "apt-get install pcscd vsmartcard-vpcd libpcsclite-dev"
LOCK_WAIT = 90.0
RUN_DIR = Path("/run/pcscd")
# pcscd polls vpcd for card presence every 400 ms; this covers one poll plus scheduling.
POLL_SETTLE = 0.5


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


def _find_vpcd_driver() -> Path | None:
    for pattern in (
        "usr/lib/pcsc/drivers/serial/libifdvpcd.so*",
        "usr/lib/*/pcsc/drivers/*/libifdvpcd.so*",
    ):
        found = sorted(Path("/").glob(pattern))
        if found:
            return found[0]
    return None


def _vpcd_readers() -> list[str] | None:
    """The vpcd readers pcscd offers now, or ``None`` when pcscd does not answer."""
    try:
        names = list_readers()
    except DriverError:
        return None
    return [n for n in names if n.startswith("Virtual PCD")]


def _remove_stale_pid_file() -> None:
    # After a crash pcscd leaves its pid file behind and refuses to start while that pid
    # exists; a dead or zombie pid makes the files stale.
    pid_file = RUN_DIR / "pcscd.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    status = Path(f"/proc/{pid}/status")
    alive = status.exists() and "\nState:\tZ" not in status.read_text()
    if not alive:
        for name in ("pcscd.pid", "pcscd.comm"):
            with contextlib.suppress(OSError):
                (RUN_DIR / name).unlink()


@dataclass
class Pcscd:
    """The pcscd the tests use; ``owned`` when the tests started it (and may restart it)."""

    binary: str
    log: Path
    owned: bool = False
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        _remove_stale_pid_file()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--foreground"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.owned = True
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            readers = _vpcd_readers()
            if readers and CARD_READER in readers and SAM_READER in readers:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        pytest.fail(
            f"pcscd did not come up with the vpcd readers; its output:\n{self.log.read_text()}",
            pytrace=False,
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """vpcd's ports and pcscd are one per machine: two test runs at once must take turns."""
    path = Path(tempfile.gettempdir()) / "ykt-terminal-pcsc-tests.lock"
    with path.open("a") as handle:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"another test run has held pcscd/vpcd for {LOCK_WAIT:.0f} s", pytrace=False
                    )
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="package")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    with _machine_lock():
        yield from _pcscd(tmp_path_factory)


def _pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    binary = shutil.which("pcscd") or (
        "/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None
    )
    if binary is None:
        pytest.fail(f"pcscd is not installed; on Debian: {APT_HINT}", pytrace=False)
    if _find_vpcd_driver() is None:
        pytest.fail(
            f"vsmartcard's vpcd reader driver is not installed; on Debian: {APT_HINT}",
            pytrace=False,
        )
    daemon = Pcscd(binary=binary, log=tmp_path_factory.mktemp("pcscd") / "pcscd.log")
    readers = _vpcd_readers()
    if readers is None:
        daemon.start()
    elif CARD_READER not in readers or SAM_READER not in readers:
        pytest.fail(
            "pcscd is running without the vpcd readers: restart it after installing "
            f"vsmartcard-vpcd ({APT_HINT})",
            pytrace=False,
        )
    yield daemon
    if daemon.owned:
        daemon.stop()


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
    card_reader: str = CARD_READER
    sam_reader: str = SAM_READER

    def _start(self, kind: str, port: int, args: list[str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{kind}-{len(self.processes)}.log").open("wb")
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
        command = [sys.executable, "-m", "drivers.cardemu", kind, "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--connect-timeout", "20", *args], stdout=log, stderr=log, env=env
        )
        log.close()
        self.processes.append(process)
        return process

    def card(self, *args: str, genuine_data: bool = True) -> subprocess.Popen[bytes]:
        """A card with the test number and issuer, diversified from the test master key."""
        base = ["--number", CARD_NUMBER, "--issuer-id", ISSUER_ID, "--master-key", MASTER_KEY]
        return self._start("card", CARD_PORT, [*(base if genuine_data else []), *args])

    def sam(self, *args: str) -> subprocess.Popen[bytes]:
        return self._start("sam", SAM_PORT, ["--key", f"1={MASTER_KEY}", *args])

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=5)

    def kill_all(self) -> None:
        running = [p for p in self.processes if p.poll() is None]
        for process in running:
            self.kill(process)
        if running:
            # Let pcscd notice the empty slots before the next test's reader looks at them.
            time.sleep(POLL_SETTLE)


@pytest.fixture
def emulators(pcscd: Pcscd, tmp_path: Path) -> Iterator[Emulators]:
    if pcscd.owned and pcscd.process is None:
        pcscd.start()  # a failed restart test must not take the other tests down with it
    emus = Emulators(log_dir=tmp_path)
    yield emus
    emus.kill_all()


@pytest.fixture
def make_reader(pcscd: Pcscd, key_file: Path) -> Iterator[Callable[..., PcscCardReader]]:
    readers: list[PcscCardReader] = []

    def make(**overrides: Any) -> PcscCardReader:
        settings: dict[str, Any] = {
            "reader_pattern": CARD_READER,
            "key_file": key_file,
            "apdu_timeout": 0.5,
            "max_backoff": 0.5,
        }
        settings.update(overrides)
        reader = PcscCardReader(PcscSettings(**settings))
        readers.append(reader)
        return reader

    yield make
    # An open PC/SC connection at interpreter exit can hang the process: close explicitly.
    for reader in readers:
        reader.close()
