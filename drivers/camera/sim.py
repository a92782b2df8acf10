"""A simulated camera for the demo and tests: plays image files or a video, or shows nothing.

What the camera shows is set through :class:`SimCameraControl` (the person stepping in front of
the gate), so the camera itself only has the :class:`~drivers.camera.Camera` methods. Frames are
produced on demand, one new frame per call, so tests never wait for a clock; ``fps`` paces them
like a live camera when a demo wants that.
"""

import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from drivers.camera.images import fill, place, read_image
from drivers.camera.interface import CapturedFrame, Frame
from drivers.interfaces import Health
from models.errors import DriverError


class SimCameraControl:
    """What the simulated camera shows: a playlist of frames (looped), a video, or nothing.

    ``fit`` "pad" keeps an image's pixel size on a grey frame (a face at a fixed distance);
    "fill" scales it to cover the frame, as a live camera sees a person with no border around.
    """

    def __init__(self, width: int = 640, height: int = 480, fit: str = "pad") -> None:
        self.width = width
        self.height = height
        self.fit = fit
        self._lock = threading.Lock()
        self._frames: list[Frame] = []
        self._unplugged = False

    def show(self, frames: Iterable[Frame]) -> None:
        fit = fill if self.fit == "fill" else place
        placed = [fit(f, self.width, self.height) for f in frames]
        with self._lock:
            self._frames = placed

    def show_files(self, paths: Sequence[Path]) -> None:
        self.show(read_image(p) for p in paths)

    def show_video(self, path: Path, max_frames: int = 300) -> None:
        capture = cv2.VideoCapture(str(path))
        frames: list[Frame] = []
        try:
            while len(frames) < max_frames:
                ok, image = capture.read()
                if not ok or image is None:
                    break
                frames.append(np.asarray(image, dtype=np.uint8))
        finally:
            capture.release()
        if not frames:
            raise DriverError(f"no frames in video {path.name}")
        self.show(frames)

    def clear(self) -> None:
        """Nobody in front of the camera: an empty grey scene."""
        self.show([])

    def unplug(self, unplugged: bool = True) -> None:
        with self._lock:
            self._unplugged = unplugged

    def snapshot(self) -> tuple[list[Frame], bool]:
        with self._lock:
            return list(self._frames), self._unplugged


class SimCamera:
    def __init__(self, control: SimCameraControl, fps: float = 0.0) -> None:
        self._control = control
        self._fps = fps
        self._seq = 0
        self._next_at = time.monotonic()
        self._lock = threading.Lock()
        self._closed = False

    def latest(self, after: int = -1, timeout: float = 0.0) -> CapturedFrame | None:
        if self._closed:
            raise DriverError("simulated camera is closed")
        frames, unplugged = self._control.snapshot()
        if unplugged:
            if timeout > 0:
                time.sleep(min(timeout, 0.05))
            return None
        with self._lock:
            if self._fps > 0:
                wait = self._next_at - time.monotonic()
                if wait > timeout:
                    time.sleep(max(timeout, 0.0))
                    return None
                if wait > 0:
                    time.sleep(wait)
                self._next_at = max(self._next_at, time.monotonic()) + 1.0 / self._fps
            self._seq = max(self._seq, after) + 1
            if frames:
                image = frames[(self._seq - 1) % len(frames)]
            else:
                image = np.full((self._control.height, self._control.width, 3), 96, np.uint8)
            return CapturedFrame(image, self._seq, time.monotonic())

    def health(self) -> Health:
        _, unplugged = self._control.snapshot()
        if self._closed:
            return Health(ok=False, state="closed")
        return Health(ok=not unplugged, state="unplugged" if unplugged else "simulated")

    def close(self) -> None:
        self._closed = True
