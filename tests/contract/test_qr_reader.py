"""The QrReader contract, run against every reader: simulated, camera decoder, serial scanner.

What every implementation of :class:`drivers.qr.interface.QrReader` promises:

- ``next_event`` returns within its timeout: ``None`` when nothing happened, at once with 0;
- a code held in view (decoded frame after frame, or scanned again and again) is one
  :class:`QrPresented` with the text and the reader's source, and nothing more while it stays;
- a code taken away is one :class:`QrRemoved` (the camera and the scanner: once it has not been
  seen for ``gone_seconds``); shown again after that, it is a new presentation;
- a different code while one is in view: ``QrRemoved``, then ``QrPresented`` for the new one;
- ``health`` is ok with a state while the reader works; ``close`` ends it: ``next_event`` raises
  :class:`~models.errors.DriverError`, ``health`` is not ok, a second ``close`` is harmless.

The camera decoder runs on real OpenCV over real rendered codes (segno, bench/qr_decode.py) that
a camera double hands out; the serial reader reads a real pty pair whose far end plays a scanner
in continuous mode, repeating the code while it is held.
"""

import os
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from bench.qr_decode import code_frame, scene
from drivers.camera.interface import CapturedFrame, Frame
from drivers.interfaces import Health
from drivers.qr.camera import CameraQrReader
from drivers.qr.interface import QrEvent, QrPresented, QrReader, QrRemoved
from drivers.qr.serial import SerialQrReader
from drivers.qr.settings import QrSettings
from drivers.qr.sim import SimQrReader
from models.errors import DriverError
from tests.contract.events import next_event_within

GONE = 0.4  # gone_seconds of the camera and serial readers under test
WAIT = 5.0  # for an event that should come; returned well before on a healthy reader
SLACK = 0.5  # what a return "within the timeout" may overrun on a busy two-CPU machine
HOLD = 1.2  # a code held this long (three times GONE) still gives nothing more
CODE_A = "YKT1.eyJleHAiOjE3MDAwMDAwNjAsImgiOiJIMDAxIn0.c2lnbmF0dXJlLWE"
CODE_B = "YKT1.eyJleHAiOjE3MDAwMDAwNjAsImgiOiJIMDAyIn0.c2lnbmF0dXJlLWI"


class QrHarness(Protocol):
    reader: QrReader
    source: str

    def present(self, text: str) -> None:
        """Hold ``text`` in front of the reader (replacing whatever was there) until removed."""
        ...

    def remove(self) -> None: ...

    def close(self) -> None: ...


def next_real_event(reader: QrReader) -> QrEvent:
    return next_event_within(reader.next_event, WAIT, "QR reader")


# -- the harnesses -------------------------------------------------------------------------


class SimHarness:
    source = "sim"

    def __init__(self) -> None:
        self.sim = SimQrReader()
        self.reader: QrReader = self.sim

    def present(self, text: str) -> None:
        self.sim.show(text)

    def remove(self) -> None:
        self.sim.hide()

    def close(self) -> None:
        self.sim.close()


class FakeCamera:
    """A camera double that hands out the picture it is told to show, a new frame per call, as
    the real ones do: the newest frame, never a backlog, never changed once handed out."""

    def __init__(self, image: Frame | None = None) -> None:
        self._lock = threading.Lock()
        self._images = [scene() if image is None else image]
        self._seq = 0
        self.calls = 0
        self.unplugged = False
        self.closed = False

    def show(self, image: Frame) -> None:
        self.play([image])

    def play(self, images: list[Frame]) -> None:
        """Hand these out in turn (a held code in frames of their own noise)."""
        with self._lock:
            self._images = list(images)

    def latest(self, after: int = -1, timeout: float = 0.0) -> CapturedFrame | None:
        if self.closed:
            raise DriverError("camera is closed")
        if self.unplugged:
            time.sleep(min(timeout, 0.05))
            return None
        with self._lock:
            self.calls += 1
            self._seq = max(self._seq, after) + 1
            image = self._images[self._seq % len(self._images)]
            return CapturedFrame(image, self._seq, time.monotonic())

    def health(self) -> Health:
        if self.closed:
            return Health(ok=False, state="closed")
        if self.unplugged:
            return Health(ok=False, state="reconnecting", detail="cannot open the camera")
        return Health(ok=True, state="streaming")

    def close(self) -> None:
        self.closed = True


_FRAMES: dict[str, Frame] = {}


def shown(text: str) -> Frame:
    """A 640x480 frame with ``text`` as an easily read code (4 px modules, sharp, level)."""
    if text not in _FRAMES:
        frame = code_frame(text, 4.0)
        assert frame is not None
        _FRAMES[text] = frame
    return _FRAMES[text]


class CameraHarness:
    source = "camera"

    def __init__(self) -> None:
        self.camera = FakeCamera()
        self.reader: QrReader = CameraQrReader(
            self.camera, QrSettings(driver="camera", gone_seconds=GONE, decode_fps=15)
        )

    def present(self, text: str) -> None:
        self.camera.show(shown(text))

    def remove(self) -> None:
        self.camera.show(scene())

    def close(self) -> None:
        self.reader.close()


class PtyScanner:
    """The scanner module's end of a serial line: a pty pair whose follower the driver opens
    through ``link``, which stays put while the pty behind it is unplugged and plugged again
    (as /dev/serial/by-id/... does)."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self._lock = threading.Lock()
        self._leader: int | None = None
        self._follower: int | None = None
        self.plug()

    def plug(self) -> None:
        leader, follower = os.openpty()
        # Raw at once: until the driver configures the port, the line discipline would echo and
        # translate what the scanner sends.
        tty.setraw(follower)
        os.set_blocking(leader, False)
        fresh = self.link.with_name(self.link.name + ".new")
        fresh.unlink(missing_ok=True)
        fresh.symlink_to(os.ttyname(follower))
        fresh.replace(self.link)
        with self._lock:
            self._leader, self._follower = leader, follower

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        with self._lock:
            fds = (self._leader, self._follower)
            self._leader = self._follower = None
        for fd in fds:
            if fd is not None:
                os.close(fd)

    def write(self, data: bytes, within: float = 5.0) -> None:
        """All of ``data``, however slowly the driver reads it; fails after ``within`` seconds."""
        deadline = time.monotonic() + within
        view = memoryview(data)
        while view:
            with self._lock:
                leader = self._leader
                if leader is None:
                    return  # unplugged: the bytes go nowhere, as on a pulled cable
                try:
                    view = view[os.write(leader, view) :]
                    continue
                except BlockingIOError:
                    pass
            if time.monotonic() > deadline:
                raise TimeoutError("the driver stopped reading the pty")
            time.sleep(0.005)

    def close(self) -> None:
        self.unplug()


def connected(reader: SerialQrReader, within: float = WAIT) -> None:
    """Bytes sent before pyserial opens the port are flushed by it: wait for the open."""
    deadline = time.monotonic() + within
    while not reader.health().ok:
        assert time.monotonic() < deadline, f"never connected: {reader.health()}"
        time.sleep(0.02)


class SerialHarness:
    source = "serial"
    REPEAT = 0.1  # a scanner in continuous mode sends a held code again this often

    def __init__(self, link: Path) -> None:
        self.scanner = PtyScanner(link)
        self.serial = SerialQrReader(
            QrSettings(driver="serial", url=str(link), gone_seconds=GONE, reconnect_max_seconds=0.2)
        )
        self.reader: QrReader = self.serial
        connected(self.serial)
        self._held: str | None = None
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._repeat, name="pty-scanner", daemon=True)
        self._thread.start()

    def _repeat(self) -> None:
        while True:
            with self._cond:
                if self._stop:
                    return
                held = self._held
            if held is not None:
                self.scanner.write(held.encode("ascii") + b"\r\n")
            with self._cond:
                self._cond.wait(self.REPEAT)

    def present(self, text: str) -> None:
        with self._cond:
            self._held = text
            self._cond.notify_all()

    def remove(self) -> None:
        with self._cond:
            self._held = None

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(2)
        self.serial.close()
        self.scanner.close()


@pytest.fixture(params=["sim", "camera", "serial"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QrHarness]:
    made: QrHarness
    if request.param == "sim":
        made = SimHarness()
    elif request.param == "camera":
        made = CameraHarness()
    else:
        made = SerialHarness(tmp_path / "ttyQR")
    yield made
    made.close()


# -- the contract --------------------------------------------------------------------------


def test_an_idle_reader_returns_none_within_the_timeout(harness: QrHarness) -> None:
    started = time.monotonic()
    assert harness.reader.next_event(0) is None
    assert time.monotonic() - started < SLACK
    started = time.monotonic()
    assert harness.reader.next_event(0.3) is None
    assert time.monotonic() - started < 0.3 + SLACK


def test_a_held_code_is_one_presentation_then_one_removal(harness: QrHarness) -> None:
    harness.present(CODE_A)
    assert next_real_event(harness.reader) == QrPresented(CODE_A, harness.source)
    started = time.monotonic()
    assert harness.reader.next_event(HOLD) is None  # still held, seen again and again: nothing
    assert time.monotonic() - started < HOLD + SLACK
    harness.remove()
    assert next_real_event(harness.reader) == QrRemoved()
    assert harness.reader.next_event(0.3) is None


def test_shown_again_after_removal_is_a_new_presentation(harness: QrHarness) -> None:
    for _ in range(2):
        harness.present(CODE_A)
        assert next_real_event(harness.reader) == QrPresented(CODE_A, harness.source)
        harness.remove()
        assert next_real_event(harness.reader) == QrRemoved()


def test_another_code_replaces_the_one_in_view(harness: QrHarness) -> None:
    harness.present(CODE_A)
    assert next_real_event(harness.reader) == QrPresented(CODE_A, harness.source)
    harness.present(CODE_B)
    assert next_real_event(harness.reader) == QrRemoved()
    assert next_real_event(harness.reader) == QrPresented(CODE_B, harness.source)
    assert harness.reader.next_event(0.3) is None


def test_health_reports_a_working_reader(harness: QrHarness) -> None:
    health = harness.reader.health()
    assert health.ok, health
    assert health.state


def test_close_ends_the_reader_and_is_idempotent(harness: QrHarness) -> None:
    harness.present(CODE_A)
    assert isinstance(next_real_event(harness.reader), QrPresented)
    harness.reader.close()
    harness.reader.close()
    with pytest.raises(DriverError):
        harness.reader.next_event(0.1)
    assert not harness.reader.health().ok
