"""The PC/SC stack the emulators plug into, brought up for the integration tests and benchmarks.

pcscd is started in the foreground when it is not running (test machines have no systemd) and
stopped again by whoever started it. vpcd's slots are fixed ports (35963 for the card, 35964 for
the PSAM) and pcscd is one per machine, so every user takes them under one file lock and
concurrent runs take turns. Emulators run as subprocesses, so a stuck exchange never hangs the
caller and killing one is pulling the card out.

:class:`TappingCard` is a card process the caller puts on the reader and takes off again by
command, a different card number each time, for measurements that need hundreds of taps without
starting a process per tap::

    python -m devtools.cardemu.harness tapping-card --issuer-id HEX --master-key HEX
"""

import argparse
import contextlib
import fcntl
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devtools.cardemu.card import CardContent, EmulatedCard
from devtools.cardemu.vpcd import VPCD_HOST, VPCD_PORT, connect, serve
from drivers.keystore import diversify
from drivers.pcsc import list_readers
from models.errors import DriverError

CARD_READER = "Virtual PCD 00 00"
SAM_READER = "Virtual PCD 00 01"
CARD_PORT = VPCD_PORT
SAM_PORT = VPCD_PORT + 1
APT_HINT = "apt-get install pcscd vsmartcard-vpcd libpcsclite-dev"
# pcscd asks vpcd whether a card is present every 400 ms (pcsc-lite's poll rate for drivers
# that cannot signal insertion themselves); waiting this long covers one poll plus scheduling.
POLL_SETTLE = 0.5
LOCK_NAME = "ykt-terminal-pcsc-tests.lock"
RUN_DIR = Path("/run/pcscd")
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class HarnessError(DriverError):
    """Raised when pcscd, vpcd or an emulator cannot be brought up; the message says what to fix."""


def find_pcscd() -> str | None:
    return shutil.which("pcscd") or (
        "/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists() else None
    )


def find_vpcd_driver() -> Path | None:
    for pattern in (
        "usr/lib/pcsc/drivers/serial/libifdvpcd.so*",
        "usr/lib/*/pcsc/drivers/*/libifdvpcd.so*",
    ):
        found = sorted(Path("/").glob(pattern))
        if found:
            return found[0]
    return None


def vpcd_readers() -> list[str] | None:
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
    """The pcscd in use; ``owned`` when this process started it (and so may restart it)."""

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
            readers = vpcd_readers()
            if readers and CARD_READER in readers and SAM_READER in readers:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise HarnessError(
            f"pcscd did not come up with the vpcd readers; its output:\n{self.log.read_text()}"
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


def ensure_pcscd(log: Path) -> Pcscd:
    """A pcscd offering both vpcd readers: the running one, or one started here (``owned``)."""
    binary = find_pcscd()
    if binary is None:
        raise HarnessError(f"pcscd is not installed; on Debian: {APT_HINT}")
    if find_vpcd_driver() is None:
        raise HarnessError(
            f"vsmartcard's vpcd reader driver is not installed; on Debian: {APT_HINT}"
        )
    daemon = Pcscd(binary=binary, log=log)
    readers = vpcd_readers()
    if readers is None:
        daemon.start()
    elif CARD_READER not in readers or SAM_READER not in readers:
        raise HarnessError(
            "pcscd is running without the vpcd readers: restart it after installing "
            f"vsmartcard-vpcd ({APT_HINT})"
        )
    return daemon


@contextlib.contextmanager
def machine_lock(wait: float) -> Iterator[None]:
    """vpcd's ports and pcscd are one per machine: two users at once must take turns."""
    path = Path(tempfile.gettempdir()) / LOCK_NAME
    with path.open("a") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise HarnessError(
                        f"another run has held pcscd/vpcd for {wait:.0f} s ({path})"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _module_command(module: str, args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    # The emulators import this project: make it importable however the caller was started.
    env = {**os.environ, "PYTHONPATH": str(_PROJECT_ROOT)}
    return [sys.executable, "-m", module, *args], env


def start_emulator(kind: str, port: int, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m devtools.cardemu KIND --port PORT ARGS...`` with its output in ``log``."""
    command, env = _module_command(
        "devtools.cardemu", [kind, "--port", str(port), "--connect-timeout", "20", *args]
    )
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=out, env=env)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Kill ``process`` if it still runs and reap it."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=timeout)


@dataclass
class TappingCard:
    """A card process put on and taken off the reader by command, any card number each time.

    Every card it presents is genuine for ``master_key`` and ``issuer_id``; ``uid`` defaults to
    the card number's 10 BCD bytes, so a UID-mode reader reports the same number.
    """

    issuer_id: str
    master_key: str
    log: Path
    port: int = CARD_PORT
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        command, env = _module_command(
            "devtools.cardemu.harness",
            [
                "tapping-card",
                "--port",
                str(self.port),
                "--issuer-id",
                self.issuer_id,
                "--master-key",
                self.master_key,
            ],
        )
        with self.log.open("ab") as err:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=env,
                bufsize=0,
            )

    def _command(self, line: str, timeout: float) -> None:
        process = self.process
        if process is None or process.stdin is None or process.stdout is None:
            raise HarnessError("the tapping card is not running")
        try:
            process.stdin.write(line.encode() + b"\n")
        except BrokenPipeError:
            raise HarnessError(f"the tapping card exited; see {self.log}") from None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        answer = process.stdout.readline().decode().strip() if ready else ""
        if answer != "ok":
            verb = line.split(maxsplit=1)[0]
            raise HarnessError(f"tapping card: {verb}: {answer or 'no answer'}; see {self.log}")

    def insert(
        self,
        number: str,
        *,
        issue_seq: int = 1,
        uid: str | None = None,
        class_code: int = 3,
        timeout: float = 10.0,
    ) -> None:
        """Put a card with ``number`` in the field; returns once it is connected to vpcd."""
        self._command(f"insert {number} {issue_seq} {uid or number} {class_code}", timeout)

    def remove(self, timeout: float = 10.0) -> None:
        """Take the card out of the field (vpcd sees its connection close at once)."""
        self._command("remove", timeout)

    def close(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # end of input: the card leaves and the process exits
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stop_process(process)
        if process.stdout is not None:
            process.stdout.close()


class _Presentation:
    """One card in the field of the tapping card process, served on its own thread."""

    def __init__(self, sock: socket.socket, card: EmulatedCard) -> None:
        self._sock = sock
        self._thread = threading.Thread(target=serve, args=(sock, card), daemon=True)
        self._thread.start()

    def end(self) -> None:
        # shutdown wakes the serving thread's recv at once, unlike waiting for its timeout.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)


def _tapping_card(args: argparse.Namespace) -> int:
    issuer_id = bytes.fromhex(args.issuer_id)
    master_key = bytes.fromhex(args.master_key)
    current: _Presentation | None = None

    def answer(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        words = line.split()
        if current is not None:
            current.end()
            current = None
        if words[:1] == ["remove"]:
            answer("ok")
            continue
        if words[:1] != ["insert"] or len(words) not in (4, 5):
            answer(f"cannot understand {line.strip()!r}")
            continue
        number, issue_seq, uid = words[1], int(words[2]), bytes.fromhex(words[3])
        class_code = int(words[4]) if len(words) == 5 else 3
        try:
            content = CardContent(
                number=number,
                issuer_id=issuer_id,
                card_key=diversify(master_key, bytes.fromhex(number), issuer_id),
                issue_seq=issue_seq,
                uid=uid,
                class_code=class_code,
            )
        except ValueError as exc:
            answer(f"bad card: {exc}")
            continue
        sock = connect(args.host, args.port, args.connect_timeout)
        if sock is None:
            answer(f"vpcd at {args.host}:{args.port} did not accept a connection")
            continue
        current = _Presentation(sock, EmulatedCard(content))
        answer("ok")
    if current is not None:
        current.end()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.cardemu.harness")
    sub = parser.add_subparsers(dest="command", required=True)
    tapping = sub.add_parser(
        "tapping-card",
        help="read 'insert NUMBER ISSUE_SEQ UID_HEX [CLASS_CODE]' and 'remove' lines on stdin, "
        "answer 'ok'",
    )
    tapping.add_argument("--host", default=VPCD_HOST)
    tapping.add_argument("--port", type=int, default=CARD_PORT)
    tapping.add_argument("--issuer-id", required=True, help="8-byte issuer id, hex")
    tapping.add_argument("--master-key", required=True, help="master key, hex")
    tapping.add_argument("--connect-timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    return _tapping_card(args)


if __name__ == "__main__":
    sys.exit(main())
