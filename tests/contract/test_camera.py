"""The Camera contract (tests/contract/camera_contract.py) on the simulated camera, on demand and
paced like a live one, and on OpenCV capture from a video file.

OpenCVCamera takes a device index, a device path, a file or a stream URL; without a webcam the
test writes an MJPG video with ``cv2.VideoWriter``, from the shared LFW photos when ../shared is
there and from drawn frames otherwise, so the OpenCV camera runs the contract on every machine.
At the end of the file its reads fail and it reopens the file, as after an unplug.
"""

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera.images import fill, read_image
from drivers.camera.interface import Camera, Frame
from drivers.camera.opencv import OpenCVCamera
from drivers.camera.settings import CameraSettings
from drivers.camera.sim import SimCamera, SimCameraControl
from tests.contract.camera_contract import CameraContract, CameraHarness
from tests.faces.conftest import LFW

VIDEO_SIZE = (320, 240)  # what the file holds; the camera is asked for another size
CAMERA_SIZE = (256, 192)


def scenes(count: int) -> list[Frame]:
    """Different pictures, one a frame: LFW faces when ../shared is there, else drawn ones."""
    photos = sorted(LFW.glob("*/*_0001.jpg"))[:count] if LFW.is_dir() else []
    if len(photos) == count:
        return [fill(read_image(p), *VIDEO_SIZE) for p in photos]
    drawn = []
    for i in range(count):
        frame = np.full((VIDEO_SIZE[1], VIDEO_SIZE[0], 3), (40 + 5 * i) % 255, np.uint8)
        cv2.circle(frame, (60 + 5 * i, 120), 40, (255 - 3 * i, 128, 3 * i), -1)
        drawn.append(frame)
    return drawn


class SimHarness:
    def __init__(self, fps: float) -> None:
        self.width, self.height = CAMERA_SIZE
        self.fps = fps
        control = SimCameraControl(self.width, self.height, fit="fill")
        control.show(scenes(6))
        self.camera: Camera = SimCamera(control, fps=fps)
        self._made: list[Camera] = [self.camera]

    def nothing_to_show(self) -> Camera:
        control = SimCameraControl(self.width, self.height)
        control.unplug()
        camera = SimCamera(control, fps=self.fps)
        self._made.append(camera)
        return camera

    def close(self) -> None:
        for camera in self._made:
            camera.close()


class TestSimCamera(CameraContract):
    @pytest.fixture(params=[0.0, 25.0], ids=["on-demand", "paced"])
    def harness(self, request: pytest.FixtureRequest) -> Iterator[CameraHarness]:
        made = SimHarness(fps=request.param)
        yield made
        made.close()


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("camera") / "gate.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30.0, VIDEO_SIZE)
    assert writer.isOpened(), "this OpenCV build cannot write MJPG/AVI"
    for frame in scenes(45):  # 1.5 s at 30 fps, then the camera reopens the file
        writer.write(frame)
    writer.release()
    return path


class OpenCVHarness:
    def __init__(self, source: Path, missing: Path) -> None:
        self.width, self.height = CAMERA_SIZE
        self._missing = missing
        self.camera: Camera = self._make(source)
        self._made: list[Camera] = [self.camera]

    def _make(self, source: Path) -> OpenCVCamera:
        return OpenCVCamera(
            CameraSettings(
                source=str(source),
                width=self.width,
                height=self.height,
                fps=30.0,
                reconnect_first_seconds=0.05,
                reconnect_max_seconds=0.2,
            )
        )

    def nothing_to_show(self) -> Camera:
        camera = self._make(self._missing)  # a file that is not there: no device
        self._made.append(camera)
        return camera

    def close(self) -> None:
        for camera in self._made:
            camera.close()


class TestOpenCVCamera(CameraContract):
    @pytest.fixture
    def harness(self, video: Path, tmp_path: Path) -> Iterator[CameraHarness]:
        made = OpenCVHarness(video, tmp_path / "unplugged.avi")
        yield made
        made.close()
