"""Cameras: the simulated one, and OpenCV capture from a video file (reconnect included)."""

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera.images import decode_image, encode_jpeg, place
from drivers.camera.opencv import OpenCVCamera
from drivers.camera.settings import CameraSettings
from drivers.camera.sim import SimCamera, SimCameraControl
from models.errors import DriverError


def write_video(path: Path, frames: int = 12, size: tuple[int, int] = (320, 240)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, size)
    assert writer.isOpened(), "this OpenCV build cannot write MJPG/AVI"
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 20 * i % 255, np.uint8)
        writer.write(frame)
    writer.release()


def test_sim_camera_plays_frames_in_order_and_never_repeats_a_seq() -> None:
    control = SimCameraControl(64, 48)
    control.show([np.full((10, 10, 3), v, np.uint8) for v in (1, 2)])
    camera = SimCamera(control)
    first = camera.latest()
    second = camera.latest(after=first.seq if first else -1)
    assert first is not None and second is not None and second.seq > first.seq
    assert first.image.shape == (48, 64, 3)
    assert first.image[24, 32, 0] == 1 and second.image[24, 32, 0] == 2
    control.unplug()
    assert camera.latest(timeout=0.01) is None and not camera.health().ok
    control.unplug(False)
    camera.close()
    with pytest.raises(DriverError):
        camera.latest()


def test_sim_camera_plays_a_video(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    write_video(video, frames=5)
    control = SimCameraControl(640, 480)
    control.show_video(video)
    frame = SimCamera(control).latest()
    assert frame is not None and frame.image.shape == (480, 640, 3)


def test_place_keeps_the_face_size_and_shrinks_only_what_does_not_fit() -> None:
    small = np.zeros((250, 250, 3), np.uint8)
    assert place(small, 640, 480)[100:350, 195:445].shape == (250, 250, 3)
    big = np.zeros((1000, 1000, 3), np.uint8)
    assert place(big, 640, 480).shape == (480, 640, 3)


def test_jpeg_round_trip_and_garbage() -> None:
    image = np.full((20, 30, 3), 128, np.uint8)
    assert decode_image(encode_jpeg(image)).shape == (20, 30, 3)
    with pytest.raises(DriverError):
        decode_image(b"nope")


def wait_for(predicate, seconds: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_opencv_camera_keeps_the_latest_frame_at_the_configured_size(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    write_video(video, frames=30)
    camera = OpenCVCamera(CameraSettings(source=str(video), width=160, height=120, fps=50))
    try:
        first = camera.latest(timeout=5)
        assert first is not None and first.image.shape == (120, 160, 3)
        later = camera.latest(after=first.seq, timeout=5)
        assert later is not None and later.seq > first.seq
        assert camera.health().ok
    finally:
        camera.close()


def test_opencv_camera_reconnects_when_the_device_comes_back(tmp_path: Path) -> None:
    video = tmp_path / "late.avi"  # not there yet: the camera is "unplugged"
    settings = CameraSettings(source=str(video), width=160, height=120, fps=50,
                              reconnect_first_seconds=0.05, reconnect_max_seconds=0.1)  # fmt: skip
    camera = OpenCVCamera(settings)
    try:
        assert camera.latest(timeout=0.3) is None
        assert camera.health().state == "reconnecting"
        write_video(video, frames=10)  # plugged in
        first = camera.latest(timeout=5)
        assert first is not None

        def reconnects() -> int:
            detail = camera.health().detail
            return int(detail.split()[0]) if detail.endswith("reconnects") else -1

        before = reconnects()
        # At the end of the file reads fail: the camera reopens it, as after an unplug, and
        # frames flow again with higher sequence numbers.
        assert wait_for(lambda: reconnects() > before)
        assert camera.latest(after=first.seq + 10, timeout=5) is not None
    finally:
        camera.close()
