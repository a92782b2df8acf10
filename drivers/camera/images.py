"""Image files and bytes to frames and back (OpenCV's codecs), and letterboxing."""

from pathlib import Path

import cv2
import numpy as np

from drivers.camera.interface import Frame
from models.errors import DriverError


def read_image(path: Path) -> Frame:
    """An image file as a BGR frame; ``DriverError`` when it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DriverError(f"cannot read image {path.name}")
    return np.asarray(image, dtype=np.uint8)


def fill(image: Frame, width: int, height: int) -> Frame:
    """``image`` scaled to cover a ``width`` x ``height`` frame, the overflow cropped evenly.

    Unlike :func:`place` no border shows: a border around a face is what a liveness check looks
    for in a photo held up to the camera.
    """
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    resized = cv2.resize(image, (max(width, round(w * scale)), max(height, round(h * scale))))
    top = (resized.shape[0] - height) // 2
    left = (resized.shape[1] - width) // 2
    return np.asarray(resized[top : top + height, left : left + width], dtype=np.uint8)


def place(image: Frame, width: int, height: int) -> Frame:
    """``image`` centred on a grey ``width`` x ``height`` frame, shrunk only if it does not fit.

    A registration photo or a 250x250 test photo stands in for a person in front of a 640x480
    camera: the face keeps its pixel size, as it would at a fixed distance.
    """
    h, w = image.shape[:2]
    scale = min(1.0, width / w, height / h)
    if scale < 1.0:
        image = np.asarray(cv2.resize(image, (int(w * scale), int(h * scale))), dtype=np.uint8)
        h, w = image.shape[:2]
    frame = np.full((height, width, 3), 96, np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    frame[top : top + h, left : left + w] = image
    return frame


def decode_image(data: bytes) -> Frame:
    """JPEG/PNG bytes (a registration photo) as a BGR frame; ``DriverError`` when undecodable."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DriverError("the photo is not a readable JPEG or PNG image")
    return np.asarray(image, dtype=np.uint8)


def encode_jpeg(frame: Frame, quality: int = 85) -> bytes:
    """A frame as JPEG bytes (security-event stills)."""
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DriverError("could not encode a JPEG still")
    return bytes(data.tobytes())


def qr_texts(image: Frame) -> list[str]:
    """The texts of the QR codes OpenCV finds in ``image`` (none: ``[]``); for diag's check of a
    photo of a code. The QR reader drivers decode the camera's frames themselves."""
    detector = cv2.QRCodeDetector()
    try:
        found, texts, _, _ = detector.detectAndDecodeMulti(image)
    except cv2.error as exc:
        raise DriverError(f"QR decoding failed: {exc}") from None
    return [str(text) for text in texts if text] if found else []
