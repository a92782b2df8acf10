"""QR codes decoded from the frames the terminal's camera already delivers, beside face matching.

The camera is shared: the face watch and the face checks call ``latest()`` on it too. This reader
only ever takes the newest frame (``latest`` hands a frame out without consuming it, and a frame
handed out is never changed, so nothing is copied), searches at most ``decode_fps`` frames a
second and never more than half of one core's time, in its own thread; OpenCV releases the GIL
while it decodes, so the face pipeline runs meanwhile.

The decoder is OpenCV's ``QRCodeDetectorAruco``: on rendered electronic-card codes (version 11,
about 250 characters) it reads many more sizes, blurs and rotations than ``QRCodeDetector``
(bench/qr_decode.py, docs/qr-readers.md). It searches a half-size copy of the frame first, so a
frame without a code (most frames) costs a fraction of a full search; when a code is located but
does not decode, its region is decoded once more enlarged and sharpened, which recovers small and
slightly blurred codes.
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
_FULL_EVERY = 3  # frames: one in this many is searched at full size when nothing is tracked


# A version 1 code is 21 modules wide: no image narrower than that holds one.
_SMALLEST = 21


class QrDecoder:
    """A frame to the text of the QR code in it. One per thread: OpenCV's detectors keep state,
    and so does this (which scale to search next)."""

    def __init__(self) -> None:
        self._detector = cv2.QRCodeDetectorAruco()
        self._since_full = _FULL_EVERY  # the first frame is searched at full size
        self._tracking = False

    def decode(self, image: Frame) -> str | None:
        if min(image.shape[:2]) < _SMALLEST:
            return None  # no code fits, and OpenCV's resize refuses an empty half-size copy
        gray: Frame = image
        if image.ndim == 3:
            gray = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
        # Locating a code is most of the cost, and most frames have none: search a half-size
        # copy first (a tenth of the time), the full frame only every few frames for a code too
        # small for that (under about 3.5 px a module), and every frame while one such is read.
        small = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        found, points = self._detector.detect(small)
        full = not found and (self._tracking or self._since_full >= _FULL_EVERY - 1)
        if full:
            found, points = self._detector.detect(gray)
        self._since_full = 0 if full else self._since_full + 1
        if not found or points is None:
            self._tracking = False
            return None
        corners = np.asarray(points, dtype=np.float32).reshape(-1, 2) * (1 if full else 2)
        text = ""
        if full:
            text = str(self._detector.decode(gray, points)[0])
        else:
            # Corners found at half size are too rough to sample the modules with: decode the
            # region at full size, located afresh there (a small image: cheap).
            region = self._region(gray, corners)
            if region is not None:
                text = str(self._detector.detectAndDecode(region)[0])
        if not text:
            text = self._enlarged(gray, corners)
        self._tracking = full and bool(text)
        return text.rstrip("\r\n") or None

    @staticmethod
    def _region(gray: Frame, corners: np.ndarray) -> Frame | None:
        low, high = corners.min(axis=0), corners.max(axis=0)
        margin = (high - low) * _MARGIN + 4
        x0, y0 = np.maximum(low - margin, 0).astype(int)
        x1, y1 = np.minimum(high + margin, (gray.shape[1], gray.shape[0])).astype(int)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        return np.ascontiguousarray(gray[y0:y1, x0:x1])

    def _enlarged(self, gray: Frame, corners: np.ndarray) -> str:
        region = self._region(gray, corners)
        if region is None:
            return ""
        scale = _RETRY_SCALE
        large = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        # Unsharp mask: a slightly out-of-focus code's modules run into each other.
        soft = cv2.GaussianBlur(large, (0, 0), 2.0)
        sharpened = cv2.addWeighted(large, 1.8, soft, -0.8, 0)
        text, _, _ = self._detector.detectAndDecode(sharpened)
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
