"""A real camera through OpenCV's ``VideoCapture``, read by one thread that keeps the newest frame.

Why a thread: ``VideoCapture.read`` blocks until the driver delivers a frame and V4L2 buffers a
few of them, so a reader that only reads when it needs a frame gets an old one. The thread reads
continuously, keeps only the latest frame, and the flow takes it when it wants.

Unplugging: a failed ``read`` (or no frame for ``stall_seconds``) closes the device and reopens it
with a capped exponential back-off, forever, until :meth:`OpenCVCamera.close`; ``health`` says
``reconnecting`` meanwhile and ``latest`` returns ``None``.
"""

import logging
import threading
import time

import cv2
import numpy as np

from drivers.camera.interface import CapturedFrame, Frame
from drivers.camera.settings import CameraSettings
from drivers.interfaces import Health
from models.errors import DriverError

logger = logging.getLogger(__name__)


class OpenCVCamera:
    def __init__(self, settings: CameraSettings) -> None:
        self.settings = settings
        self._cond = threading.Condition()
        self._frame: CapturedFrame | None = None
        self._seq = 0
        self._state = "connecting"
        self._detail = ""
        self._reconnects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()

    def _open(self) -> cv2.VideoCapture | None:
        source = self.settings.source
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            capture.release()
            return None
        # Requests, not guarantees: a camera picks its nearest supported mode; frames are
        # resized afterwards if it did not honour the size.
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.settings.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.settings.height)
        capture.set(cv2.CAP_PROP_FPS, self.settings.fps)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture

    def _publish(self, image: Frame) -> None:
        width, height = self.settings.width, self.settings.height
        if image.shape[1] != width or image.shape[0] != height:
            image = np.asarray(cv2.resize(image, (width, height)), dtype=np.uint8)
        with self._cond:
            self._seq += 1
            self._frame = CapturedFrame(image, self._seq, time.monotonic())
            self._state, self._detail = "streaming", ""
            self._cond.notify_all()

    def _lost(self, why: str) -> None:
        with self._cond:
            self._frame = None
            self._state, self._detail = "reconnecting", why
            self._reconnects += 1

    def _run(self) -> None:
        backoff = self.settings.reconnect_first_seconds
        period = 1.0 / self.settings.fps if self.settings.fps > 0 else 0.0
        while not self._stop.is_set():
            capture = self._open()
            if capture is None:
                self._lost("cannot open the camera")
                # The source is not logged: a stream URL may carry a password.
                logger.warning("camera not available; retrying in %.1f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.settings.reconnect_max_seconds)
                continue
            logger.info("camera opened")
            last_ok = time.monotonic()
            try:
                while not self._stop.is_set():
                    started = time.monotonic()
                    ok, image = capture.read()
                    if ok and image is not None and image.ndim == 3:
                        self._publish(np.asarray(image, dtype=np.uint8))
                        last_ok = time.monotonic()
                        backoff = self.settings.reconnect_first_seconds
                    elif time.monotonic() - last_ok > self.settings.stall_seconds or not ok:
                        self._lost("the camera stopped delivering frames")
                        logger.warning("camera lost; reconnecting")
                        break
                    # A file plays as fast as it decodes; pace it like a live camera.
                    spare = period - (time.monotonic() - started)
                    if spare > 0:
                        self._stop.wait(spare)
            finally:
                capture.release()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.settings.reconnect_max_seconds)

    def latest(self, after: int = -1, timeout: float = 0.0) -> CapturedFrame | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._stop.is_set():
                    # Not the last frame before close: it would be handed out forever.
                    raise DriverError("camera is closed")
                frame = self._frame
                if frame is not None and frame.seq > after:
                    return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def health(self) -> Health:
        with self._cond:
            if self._stop.is_set():
                return Health(ok=False, state="closed")
            ok = self._state == "streaming"
            detail = self._detail or f"{self._reconnects} reconnects"
            return Health(ok=ok, state=self._state, detail=detail)

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)
