"""QR decoding from camera frames: cost per 640 x 480 frame, and the envelope of codes it reads.

    .venv/bin/python bench/qr_decode.py            # 300 decodes per case
    .venv/bin/python bench/qr_decode.py --quick    # 40 decodes per case, < 1 minute

Frames are made here, seeded: a textured grey scene (noise, a few shapes, a gradient) with an
electronic-card code rendered by segno (``YKT1.`` + 150 + ``.`` + 86 base64url characters, byte
mode, error correction M: version 11, 61 x 61 modules) pasted at a given module size, rotation
and Gaussian blur, then sensor noise and the JPEG round trip (quality 80) an MJPG webcam gives.

1. *cost*: :class:`drivers.qr.camera.QrDecoder` (OpenCV ``QRCodeDetectorAruco``, with its
   enlarged retry) on a frame without a code (most frames a gate camera sees), with an easy code
   (4 px modules), with a held-phone code (3 px, 10 degrees, blur 0.8) and with a code it locates
   but cannot read (4 px, blur 2.4: the retry's worst case). Baselines, same run, same frames:
   OpenCV's plain ``QRCodeDetector.detectAndDecode`` (what one would otherwise pick), and YuNet
   face detection on the frame (the face watch's own per-frame step) when ``../shared`` has the
   model, so the decoder's share of the camera's CPU can be read off.
2. *envelope*: which module sizes, blurs and rotations decode, for the decoder and the plain
   detector: each cell is how many of five consecutive frames of the held code (each with its
   own sensor noise) one decoder reads, going through them as the live reader does; the live
   decoder searches the full-size frame only one frame in three until it reads a small code, so
   a 1 or 2 there may take a second or two. Deterministic for a given OpenCV build.

The helpers that make frames (:func:`token`, :func:`code_frame`, :func:`scene`) are imported by
the tests as well (tests/contract/test_qr_reader.py, tests/unit/test_qr_camera_decode.py).
"""

import argparse
import base64
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import segno

from drivers.camera.interface import Frame

WIDTH, HEIGHT = 640, 480
SIZES = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)  # pixels per module
BLURS = (0.0, 0.8, 1.2, 1.6, 2.4)  # Gaussian sigma, pixels
ANGLES = (0, 10, 30, 45, 90, 180)  # degrees
QUIET_ZONE = 4  # modules of white around the code, as the standard asks and a phone shows
_SUPERSAMPLE = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token(rng: random.Random) -> str:
    """Text shaped like an electronic card's code (CARD.md): prefix, payload, signature."""
    payload = _b64(rng.randbytes(113))[:150]
    return f"YKT1.{payload}.{_b64(rng.randbytes(64))}"


def scene(seed: int = 0) -> Frame:
    """A 640 x 480 BGR frame with texture but no code: what a gate camera mostly sees."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(70, 150, WIDTH, dtype=np.float32)
    gray = np.tile(ramp, (HEIGHT, 1)) + rng.normal(0, 6, (HEIGHT, WIDTH)).astype(np.float32)
    for _ in range(6):
        x, y = int(rng.integers(0, WIDTH - 80)), int(rng.integers(0, HEIGHT - 80))
        w, h = int(rng.integers(30, 160)), int(rng.integers(30, 160))
        cv2.rectangle(gray, (x, y), (x + w, y + h), float(rng.integers(20, 235)), -1)
    return _camera(gray, seed)


def qr_code(text: str) -> segno.QRCode:
    # As the phone app makes it (CARD.md): byte mode, error correction M, not raised by segno.
    return segno.make(text, error="m", mode="byte", boost_error=False, micro=False)


def code_frame(
    text: str, module_px: float, blur: float = 0.0, angle: float = 0.0, seed: int = 0
) -> Frame | None:
    """``text`` as a QR code (byte mode, error correction M) with ``module_px`` pixels per module,
    turned by ``angle`` degrees and blurred with sigma ``blur``, in the middle of a
    :func:`scene`; ``None`` when the turned code does not fit in the frame."""
    code = qr_code(text)
    modules = np.array([[0 if dark else 255 for dark in row] for row in code.matrix], np.uint8)
    modules = np.pad(modules, QUIET_ZONE, constant_values=255)
    side = modules.shape[0] * _SUPERSAMPLE
    sharp = cv2.resize(modules, (side, side), interpolation=cv2.INTER_NEAREST)
    turn = math.radians(angle)
    bound = math.ceil(side * (abs(math.cos(turn)) + abs(math.sin(turn)))) + 2
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    matrix[:, 2] += (bound - side) / 2
    turned = cv2.warpAffine(sharp, matrix, (bound, bound), borderValue=0)
    cover = cv2.warpAffine(np.full_like(sharp, 255), matrix, (bound, bound), borderValue=0)
    size = round(bound * module_px / _SUPERSAMPLE)
    if size > HEIGHT - 8:
        return None
    # Area averaging from 16x: a module that spans 2.5 pixels is grey at its edges, as in a lens.
    image = cv2.resize(turned, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.resize(cover, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    gray = cv2.cvtColor(scene(seed), cv2.COLOR_BGR2GRAY).astype(np.float32)
    top, left = (HEIGHT - size) // 2, (WIDTH - size) // 2
    region = gray[top : top + size, left : left + size]
    gray[top : top + size, left : left + size] = region * (1 - alpha) + image * alpha
    if blur > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), blur)
    return _camera(gray, seed + 1)


def _camera(gray: np.ndarray, seed: int) -> Frame:
    noisy = gray + np.random.default_rng(seed).normal(0, 3, gray.shape).astype(np.float32)
    bgr = cv2.cvtColor(noisy.clip(0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), dtype=np.uint8)


# -- the benchmark -----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
YUNET = ROOT / ".." / "shared" / "models" / "yunet" / "face_detection_yunet_2023mar.onnx"
TEXT_SEED = 20261204
ENVELOPE_SEEDS = (0, 1, 2, 3, 4)  # consecutive frames of one held code: 1 s at decode_fps 5


def _plain() -> Callable[[Frame], str | None]:
    detector = cv2.QRCodeDetector()

    def decode(image: Frame) -> str | None:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        text, _, _ = detector.detectAndDecode(gray)
        return str(text) or None

    return decode


def _ours() -> Callable[[Frame], str | None]:
    from drivers.qr.camera import QrDecoder  # noqa: PLC0415 - after sys.path is set

    return QrDecoder().decode


def _yunet() -> Callable[[Frame], object] | None:
    if not YUNET.is_file():
        return None
    detector = cv2.FaceDetectorYN.create(str(YUNET), "", (WIDTH, HEIGHT), 0.6)

    def detect(image: Frame) -> object:
        return detector.detect(image)[1]

    return detect


def _time(run: Callable[[Frame], object], frame: Frame, repeats: int) -> list[int]:
    for _ in range(3):
        run(frame)  # warm-up: first calls allocate
    samples = []
    for _ in range(repeats):
        started = time.perf_counter_ns()
        run(frame)
        samples.append(time.perf_counter_ns() - started)
    return samples


def bench_cost(text: str, repeats: int) -> dict[str, Any]:
    from common import percentiles, progress  # noqa: PLC0415

    cases: dict[str, Frame] = {"no code": scene(7)}
    for name, args in {
        "easy code (4 px, 0 deg)": (4.0, 0.0, 0.0),
        "held phone (3 px, 10 deg, blur 0.8)": (3.0, 0.8, 10.0),
        "unreadable (4 px, blur 2.4)": (4.0, 2.4, 0.0),
    }.items():
        frame = code_frame(text, args[0], args[1], args[2], seed=7)
        assert frame is not None
        cases[name] = frame
    runners: dict[str, Callable[[Frame], object]] = {
        "QrDecoder (aruco + retry)": _ours(),
        "QRCodeDetector (plain)": _plain(),
    }
    yunet = _yunet()
    if yunet is not None:
        runners["YuNet face detection"] = yunet
    # Interleaved by case, so a noisy minute hurts every runner alike.
    out: dict[str, Any] = {}
    for case, frame in cases.items():
        progress(f"cost: {case}")
        row: dict[str, Any] = {}
        for name, run in runners.items():
            decoder = name != "YuNet face detection"
            decoded = run(frame) if decoder else None
            row[name] = percentiles(_time(run, frame, repeats)) | (
                {"decoded": decoded == text} if decoder else {}
            )
        ours = row["QrDecoder (aruco + retry)"]
        for name in runners:
            if name != "QrDecoder (aruco + retry)":
                row[name]["ours_over_this_p50"] = round(ours["p50_ms"] / row[name]["p50_ms"], 3)
                # The mean too: a live decoder searches one frame in three at full size.
                row[name]["ours_over_this_mean"] = round(ours["mean_ms"] / row[name]["mean_ms"], 3)
        out[case] = row
    return out


def bench_envelope(text: str) -> dict[str, Any]:
    from common import progress  # noqa: PLC0415

    out: dict[str, Any] = {}
    from drivers.qr.camera import QrDecoder  # noqa: PLC0415

    runners: dict[str, Callable[[], Callable[[Frame], str | None]]] = {
        "QrDecoder": lambda: QrDecoder().decode,
        "QRCodeDetector": _plain,
    }
    for name, make in runners.items():
        progress(f"envelope: {name}")
        grid: dict[str, dict[str, str]] = {}
        read = tried = 0
        for size in SIZES:
            for blur in BLURS:
                marks = ""
                for angle in ANGLES:
                    # A code held up is in many frames, each with its own noise: one decoder
                    # goes through ENVELOPE_SEEDS frames as the live one does, and the cell says
                    # how many of them it read.
                    frames = [code_frame(text, size, blur, angle, seed=s) for s in ENVELOPE_SEEDS]
                    if frames[0] is None:
                        marks += "-"
                        continue
                    decode = make()
                    hits = sum(decode(frame) == text for frame in frames if frame is not None)
                    read, tried = read + (hits > 0), tried + 1
                    marks += str(hits)
                grid.setdefault(f"{size:g} px", {})[f"blur {blur:g}"] = marks
        out[name] = {"read": read, "tried": tried, "grid": grid}
    return out


def table(result: dict[str, Any]) -> str:
    lines = [f"machine: {result['machine']}", "", "cost per 640x480 frame (ms):"]
    for case, row in result["cost"].items():
        lines.append(f"  {case}:")
        for name, p in row.items():
            ratio = p.get("ours_over_this_p50")
            extra = (
                f"  QrDecoder / this: p50 {ratio}x, mean {p['ours_over_this_mean']}x"
                if ratio is not None
                else ""
            )
            decoded = f"  decoded={p['decoded']}" if "decoded" in p else ""
            lines.append(f"    {name:28} p50 {p['p50_ms']:7.2f}  p99 {p['p99_ms']:7.2f}  "
                         f"mean {p['mean_ms']:7.2f}{decoded}{extra}")  # fmt: skip
    lines += [
        "",
        f"envelope (angles {', '.join(map(str, ANGLES))} deg; frames read of "
        f"{len(ENVELOPE_SEEDS)}, - does not fit):",
    ]
    for name, env in result["envelope"].items():
        lines.append(f"  {name}: {env['read']} of {env['tried']} cells read at least once")
        for size, blurs in env["grid"].items():
            lines.append(f"    {size:7} " + "  ".join(f"{b}:{m}" for b, m in blurs.items()))
    return "\n".join(lines)


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(ROOT))
    from common import machine, progress, write_result  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 decodes per case, < 1 minute")
    args = parser.parse_args()
    text = token(random.Random(TEXT_SEED))
    started = time.monotonic()
    result: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "opencv": cv2.__version__,
        "code": {"characters": len(text), "version": qr_code(text).version},
        "yunet": YUNET.is_file(),
    }
    result["cost"] = bench_cost(text, 40 if args.quick else 300)
    result["envelope"] = bench_envelope(text)
    progress(f"done in {time.monotonic() - started:.0f} s")
    print(table(result))
    print(f"written {write_result('qr_decode', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
