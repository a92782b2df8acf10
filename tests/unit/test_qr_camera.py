"""The camera QR reader on real OpenCV over real rendered codes, from a camera double; its
settings and the factory.

The envelope here is the part the terminal relies on (docs/qr-readers.md); the whole table of
sizes, blurs and rotations, with the plain detector beside it, is bench/qr_decode.py's.
"""

import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from bench.qr_decode import code_frame, scene, token
from drivers.qr import open_reader
from drivers.qr.camera import CameraQrReader
from drivers.qr.interface import QrPresented, QrRemoved
from drivers.qr.serial import SerialQrReader
from drivers.qr.settings import QrSettings
from drivers.qr.sim import SimQrReader
from models.errors import DriverError
from tests.contract.events import next_event_within
from tests.contract.test_qr_reader import CODE_A, FakeCamera, shown

ROOT = Path(__file__).resolve().parents[2]
GONE = 0.4
TOKEN = token(random.Random(4))  # shaped like an electronic card's code: about 250 characters

# (pixels per module, blur sigma, degrees): cells the bench reads in five frames of five. 2 px a
# module is a 138 px code in a 640 x 480 frame; blur is a phone held a little out of focus.
ENVELOPE = [
    (2.0, 0.0, 0),
    (2.5, 0.0, 90),
    (3.0, 0.0, 45),
    (3.0, 0.8, 10),
    (3.0, 0.8, 180),
    (3.5, 1.2, 30),
    (4.0, 1.2, 45),
    (4.0, 0.8, 90),
    (5.0, 1.6, 10),
    (6.0, 1.6, 180),
]


def reader_for(camera: FakeCamera, **settings: float) -> CameraQrReader:
    values = {"gone_seconds": GONE, "decode_fps": 15.0} | settings
    return CameraQrReader(camera, QrSettings(driver="camera", **values))


@pytest.mark.parametrize(("module", "blur", "angle"), ENVELOPE)
def test_codes_within_the_envelope_are_presented(module: float, blur: float, angle: int) -> None:
    # Frames of the held code, each with its own sensor noise, as in the bench's envelope.
    frames = [code_frame(TOKEN, module, blur, angle, seed=seed) for seed in range(5)]
    camera = FakeCamera()
    camera.play([frame for frame in frames if frame is not None])
    reader = reader_for(camera)
    try:
        assert next_event_within(reader.next_event, 5, "camera") == QrPresented(TOKEN, "camera")
    finally:
        reader.close()


def test_a_scene_without_a_code_gives_nothing() -> None:
    camera = FakeCamera(scene(3))
    reader = reader_for(camera)
    try:
        assert reader.next_event(1.0) is None
        assert reader.health().ok
    finally:
        reader.close()


def test_frames_handed_out_are_never_changed() -> None:
    # The face pipeline may keep the same frame (as evidence): the decoder only reads it.
    image = shown(CODE_A)
    before = image.copy()
    reader = reader_for(FakeCamera(image))
    try:
        assert next_event_within(reader.next_event, 5, "camera") == QrPresented(CODE_A, "camera")
    finally:
        reader.close()
    assert np.array_equal(image, before)


def test_at_most_decode_fps_frames_are_taken() -> None:
    camera = FakeCamera(scene(1))
    reader = reader_for(camera, decode_fps=4.0, gone_seconds=1.0)
    started = time.monotonic()
    try:
        time.sleep(1.5)
    finally:
        reader.close()
    elapsed = time.monotonic() - started
    # An upper bound only: a slow machine takes fewer, never more.
    assert 1 <= camera.calls <= 4.0 * elapsed + 2


def test_a_code_that_is_not_printable_ascii_is_not_delivered() -> None:
    frame = code_frame("电子市民码 12345", 5.0)
    assert frame is not None
    reader = reader_for(FakeCamera(frame))
    try:
        assert reader.next_event(1.0) is None
    finally:
        reader.close()


def test_the_camera_unplugged_takes_the_code_away_and_health_says_so() -> None:
    camera = FakeCamera(shown(CODE_A))
    reader = reader_for(camera)
    try:
        assert next_event_within(reader.next_event, 5, "camera") == QrPresented(CODE_A, "camera")
        camera.unplugged = True
        assert next_event_within(reader.next_event, 5, "camera") == QrRemoved()
        health = reader.health()
        assert not health.ok
        assert health.state == "reconnecting"
        camera.unplugged = False
        assert next_event_within(reader.next_event, 5, "camera") == QrPresented(CODE_A, "camera")
        assert reader.health().ok
    finally:
        reader.close()


def test_a_closed_camera_is_reported_and_the_reader_keeps_going() -> None:
    camera = FakeCamera(scene())
    reader = reader_for(camera)
    try:
        camera.closed = True
        deadline = time.monotonic() + 5
        while reader.health().state != "camera_error" and time.monotonic() < deadline:
            time.sleep(0.02)
        health = reader.health()
        assert not health.ok
        assert health.state == "camera_error", health
        assert reader.next_event(0) is None  # the reader itself is not closed
    finally:
        reader.close()
    assert reader.health().state == "closed"
    assert not camera.calls or camera.closed  # the reader never closes the shared camera


# -- settings and the factory --------------------------------------------------------------


def test_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="url"):
        QrSettings(driver="serial")
    with pytest.raises(ValidationError, match="two decode periods"):
        QrSettings(driver="camera", decode_fps=2, gone_seconds=0.6)
    with pytest.raises(ValidationError):
        QrSettings.model_validate({"driver": "camera", "gone_second": 1})  # misspelt key
    settings = QrSettings()
    assert (settings.driver, settings.baudrate, settings.max_length) == ("camera", 9600, 512)
    with pytest.raises(ValidationError):
        settings.gone_seconds = 2  # type: ignore[misc]


def test_every_field_has_a_description() -> None:
    for name, field in QrSettings.model_fields.items():
        assert field.description, name


def test_the_settings_and_the_factory_import_without_opencv() -> None:
    code = (
        "import sys; sys.modules['cv2'] = None\n"
        "from drivers.qr import QrSettings, open_reader\n"
        "reader = open_reader(QrSettings(driver='sim'), None)\n"
        "print(type(reader).__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SimQrReader"


def test_the_factory_maps_each_driver(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match="no camera"):
        open_reader(QrSettings(driver="camera"), None)
    sim = open_reader(QrSettings(driver="sim"), None)
    assert isinstance(sim, SimQrReader)
    camera = open_reader(QrSettings(driver="camera"), FakeCamera())
    assert isinstance(camera, CameraQrReader)
    serial = open_reader(QrSettings(driver="serial", url=str(tmp_path / "none")), None)
    assert isinstance(serial, SerialQrReader)
    assert not serial.health().ok  # no such port: unreachable, retried, never a crash
    for reader in (sim, camera, serial):
        reader.close()
