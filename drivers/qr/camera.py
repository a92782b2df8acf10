"""QR codes decoded from the frames the terminal's camera already delivers, beside face matching.

The camera is shared: the face watch and the face checks call ``latest()`` on it too. This reader
only ever takes the newest frame (``latest`` hands a frame out without consuming it, and a frame
handed out is never changed, so nothing is copied), searches at most ``decode_fps`` frames a
second and never more than half of one core's time, in its own thread; OpenCV releases the GIL
while it decodes, so the face pipeline runs meanwhile.

The decoder is OpenCV's ``QRCodeDetectorAruco``: on rendered electronic-card codes (version 11,
about 250 characters) it decodes more sizes, blurs and rotations than ``QRCodeDetector`` and
costs a fifth of its time on a frame without a code, which is most frames (docs/qr-readers.md).
When a code is located but does not decode, the region is decoded once more enlarged and
sharpened, which recovers the small and slightly blurred codes a phone held at arm's length gives.
"""

import logging
import threading
import time

import cv2
import numpy as np

from drivers.camera.interface import Camera, Frame
from drivers.interfaces import Health
from drivers.qr.interface import QrEvent
from drivers.qr.lines import refusal
from drivers.qr.presence import Presence
from drivers.qr.settings import QrSettings
from models.errors import DriverError

logger = logging.getLogger(__name__)

_FRAME_WAIT = 0.5  # one latest() call; bounds how late the thread notices close()
_RETRY = 0.5  # after the camera failed
_JOIN_SECONDS = 3.0
_RETRY_SCALE = 2.0
_MARGIN = 0.15  # of the located code's size, around it, so the quiet zone comes along


class QrDecoder:
    """A frame to the text of the QR code in it. One per thread: OpenCV's detectors keep state."""

    def __init__(self) -> None:
        self._detector = cv2.QRCodeDetectorAruco()

    def decode(self, image: Frame) -> str | None:
        gray: Frame = image
        if image.ndim == 3:
            gray = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        found, points = self._detector.detect(gray)
        if not found or points is None:
            return None
        text, _ = self._detector.decode(gray, points)
        if not text:
            text = self._enlarged(gray, np.asarray(points, dtype=np.float32).reshape(-1, 2))
        return text.rstrip("\r\n") or None

    def _enlarged(self, gray: Frame, corners: np.ndarray) -> str:
        low, high = corners.min(axis=0), corners.max(axis=0)
        margin = (high - low) * _MARGIN + 4
        x0, y0 = np.maximum(low - margin, 0).astype(int)
        x1, y1 = np.minimum(high + margin, (gray.shape[1], gray.shape[0])).astype(int)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return ""
        scale = _RETRY_SCALE
        region = cv2.resize(
            gray[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC
        )
        # Unsharp mask: a slightly out-of-focus code's modules run into each other.
        soft = cv2.GaussianBlur(region, (0, 0), 2.0)
        region = cv2.addWeighted(region, 1.8, soft, -0.8, 0)
        text, _, _ = self._detector.detectAndDecode(region)
        return str(text)


class CameraQrReader:
    def __init__(self, camera: Camera, settings: QrSettings) -> None:
        self._camera = camera
        self._settings = settings
        self._presence = Presence("camera", settings.gone_seconds)
        self._lock = threading.Lock()
        self._problem = ""
        self._searched = 0
        self._presented = 0
        self._refused: str | None = None  # the last refused text, so it is logged once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qr-camera", daemon=True)
        self._thread.start()

    def next_event(self, timeout: float) -> QrEvent | None:
        return self._presence.next_event(timeout)

    def health(self) -> Health:
        if self._presence.closed:
            return Health(ok=False, state="closed")
        with self._lock:
            problem, searched, presented = self._problem, self._searched, self._presented
        if not self._thread.is_alive():
            return Health(ok=False, state="stopped", detail="the decoder thread ended")
        if problem:
            return Health(ok=False, state="camera_error", detail=problem)
        camera = self._camera.health()
        if not camera.ok:
            return Health(ok=False, state=camera.state, detail=f"camera: {camera.detail}")
        return Health(
            ok=True,
            state=camera.state,
            detail=f"{searched} frames searched, {presented} codes presented",
        )

    def close(self) -> None:
        """Stop decoding; the camera stays open (it is the face pipeline's as well)."""
        self._presence.close()
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(_JOIN_SECONDS)
            if self._thread.is_alive():
                logger.warning("qr-camera did not stop within %.0fs", _JOIN_SECONDS)

    def _run(self) -> None:
        decoder = QrDecoder()
        period = 1.0 / self._settings.decode_fps
        seq = -1
        next_at = time.monotonic()
        while not self._stop.is_set():
            wait = next_at - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            try:
                frame = self._camera.latest(after=seq, timeout=_FRAME_WAIT)
            except DriverError as exc:
                self._failed(str(exc))
                self._stop.wait(_RETRY)
                continue
            self._failed("")
            if frame is None:
                continue  # unplugged or still connecting: the camera's health says which
            seq = frame.seq
            started = time.monotonic()
            try:
                text = decoder.decode(frame.image)
            except cv2.error as exc:
                logger.debug("qr decode failed on frame %d: %s", frame.seq, exc)
                text = None
            except Exception:
                # A bug in here must not end the only decoder silently.
                logger.exception("qr decoder failed")
                text = None
            finished = time.monotonic()
            # The next search no sooner than one period after this one began, and never more
            # than half the time busy: a slow board keeps a core for the faces.
            next_at = max(started + period, finished + (finished - started))
            with self._lock:
                self._searched += 1
            if text is not None:
                self._sighting(text, frame.at)

    def _sighting(self, text: str, at: float) -> None:
        why = refusal(text, self._settings.max_length)
        if why is not None:
            if text != self._refused:
                # Length only: the text may be somebody's code with a stray byte.
                logger.info("qr code refused (%s, %d characters)", why, len(text))
                self._refused = text
            return
        self._refused = None
        if self._presence.seen(text, at):
            with self._lock:
                self._presented += 1
            logger.info("qr code presented to the camera (%d characters)", len(text))

    def _failed(self, problem: str) -> None:
        with self._lock:
            if problem and problem != self._problem:
                logger.warning("qr reader: camera failed: %s", problem)
            self._problem = problem
