"""``ykt diag camera`` and ``ykt diag face``: the camera's newest frame, and the face pipeline run
on it exactly as the terminal runs it, so a technician sees why frames are refused.

Both run on the diag server's thread, never on the tap loop: the camera keeps only its newest
frame for any number of readers, the encoder and the liveness check serialise their own calls,
and the gallery is searched under the verifier's lock. A check therefore costs the flow at most
the wait for one detection, and each command is bounded by :data:`BUDGET_SECONDS`.

Nothing here returns a template, a frame or a name. The best match's holder id is returned only
when asked for (``--show-holder``), and that request is logged.
"""

import logging
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from drivers.camera.interface import CapturedFrame, Frame
from drivers.face.pipeline import FaceReading, read_face
from drivers.face.quality import message_en, message_zh
from drivers.face.settings import QualitySettings
from drivers.interfaces import Health
from models.errors import DriverError
from models.matcher import Identification, Template
from terminal.diag.protocol import FACE_MAX_FRAMES, Level
from terminal.diag.redact import mask_digits
from terminal.faces.build import FaceParts
from terminal.faces.switch import SINCE_STATE
from terminal.faces.verifier import FaceVerifier

logger = logging.getLogger(__name__)

BUDGET_SECONDS = 5.0  # the most one command may take, whatever the camera or the CPU does
FRAME_WAIT_SECONDS = 1.0  # a camera at 15 fps has had 15 chances to deliver by then
STALE_MS = 2000  # older than this, the "newest" frame is the last one before the camera stopped
DARK, BRIGHT = 40.0, 215.0  # mean luma outside this range: the detector will struggle
NOT_ENABLED = (
    "faces are not enabled on this terminal ([faces] enabled = false): "
    "there is no camera or face matching to check"
)

Clock = Callable[[], float]


def _health(health: Health) -> dict[str, Any]:
    return {"ok": health.ok, "state": health.state, "detail": mask_digits(health.detail)}


def brightness(image: Frame) -> float:
    """Mean luma of a BGR frame (ITU-R BT.601 weights), 0 (black) to 255 (white)."""
    if image.ndim == 2:
        return round(float(image.mean()), 1)
    blue, green, red = (float(m) for m in image.reshape(-1, image.shape[-1]).mean(axis=0)[:3])
    return round(0.114 * blue + 0.587 * green + 0.299 * red, 1)


def _frame_facts(captured: CapturedFrame, now: float) -> dict[str, Any]:
    height, width = captured.image.shape[:2]
    return {
        "seq": captured.seq,
        "width": int(width),
        "height": int(height),
        "age_ms": max(0, round((now - captured.at) * 1000)),
    }


def _not_enabled() -> dict[str, Any]:
    return {"level": Level.NOT_AVAILABLE, "enabled": False, "message": NOT_ENABLED}


def camera_report(
    parts: FaceParts | None, *, wait: float = FRAME_WAIT_SECONDS, clock: Clock = time.monotonic
) -> dict[str, Any]:
    """The camera's health and its newest frame's size, age and brightness."""
    if parts is None:
        return _not_enabled()
    section = parts.section.camera
    result: dict[str, Any] = {
        "enabled": True,
        "driver": section.driver,
        "configured": {"width": section.width, "height": section.height, "fps": section.fps},
        "health": _health(parts.camera.health()),
    }
    try:
        captured = parts.camera.latest(-1, timeout=min(wait, BUDGET_SECONDS))
    except DriverError as exc:
        result.update(level=Level.FAILED, frame=None, error=mask_digits(str(exc)))
        return result
    if captured is None:
        result.update(
            level=Level.FAILED,
            frame=None,
            error=f"no frame from the camera within {wait:g} s "
            "(unplugged, still connecting, or the device is busy)",
        )
        return result
    frame = _frame_facts(captured, clock())
    frame["brightness"] = brightness(captured.image)
    result["frame"] = frame
    notes = []
    if frame["age_ms"] > STALE_MS:
        result["level"] = Level.FAILED
        result["error"] = (
            f"the newest frame is {frame['age_ms'] / 1000:.1f} s old: the camera stopped delivering"
        )
    if frame["brightness"] < DARK:
        notes.append("the picture is dark: check the lighting or the lens cover")
    elif frame["brightness"] > BRIGHT:
        notes.append("the picture is washed out: direct light or sun into the lens?")
    if (frame["width"], frame["height"]) != (section.width, section.height):
        notes.append(
            f"the camera delivers {frame['width']}x{frame['height']}, not the configured "
            f"{section.width}x{section.height}"
        )
    if notes:
        result["notes"] = notes
    return result


def _gate_facts(gate: QualitySettings) -> dict[str, Any]:
    return {
        "min_eye_distance": gate.min_eye_distance,
        "min_sharpness": gate.min_sharpness,
        "max_roll_degrees": gate.max_roll_degrees,
        "max_yaw": gate.max_yaw,
        "pitch_range": list(gate.pitch_range),
        "min_score": gate.min_score,
    }


def _search(verifier: FaceVerifier, template: Template) -> Identification:
    """The probe's two closest holders in the gallery, judged as 1:N would judge them."""
    return verifier.search(template, k=2)


def _reading_facts(reading: FaceReading) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "faces": reading.faces,
        "rejection": None if reading.rejection is None else str(reading.rejection),
        "template": reading.ok,
    }
    if reading.rejection is not None:
        facts["says"] = f"{message_zh(reading.rejection)} / {message_en(reading.rejection)}"
    quality = reading.quality
    if quality is not None:
        facts["quality"] = {
            "eye_distance": round(quality.eye_distance, 1),
            "sharpness": round(quality.sharpness, 1),
            "roll_degrees": round(quality.roll_degrees, 1),
            "yaw": round(quality.yaw, 3),
            "pitch": None if quality.pitch is None else round(quality.pitch, 3),
            "score": round(quality.score, 3),
        }
        facts["rejections"] = [str(r) for r in quality.rejections]
    elif reading.face is not None:
        facts["quality"] = {"score": round(reading.face.score, 3)}
    return facts


def _one_frame(
    parts: FaceParts,
    gate: QualitySettings,
    captured: CapturedFrame,
    show_holder: bool,
    clock: Clock,
) -> dict[str, Any]:
    started = clock()
    facts = _frame_facts(captured, started)
    reading = read_face(parts.encoder, captured.image, gate)
    facts |= _reading_facts(reading)
    if reading.ok and reading.face is not None and reading.template is not None:
        if parts.liveness is not None:
            live = parts.liveness.check(captured.image, reading.face)
            facts["liveness"] = {"live": live.live, "score": round(float(live.score), 3)}
        found = _search(parts.verifier, reading.template)
        candidates = found.candidates
        match: dict[str, Any] = {
            "best": None if not candidates else round(candidates[0].score, 4),
            "runner_up": None if len(candidates) < 2 else round(candidates[1].score, 4),
            "identify": str(found.outcome),
        }
        if show_holder and candidates:
            match["holder_id"] = candidates[0].key
        facts["match"] = match
    facts["ms"] = round((clock() - started) * 1000)
    return facts


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


def _summary(frames: list[dict[str, Any]]) -> dict[str, Any]:
    outcomes = Counter(f["rejection"] or "accepted" for f in frames)
    matches = [f["match"] for f in frames if "match" in f]
    return {
        "frames": len(frames),
        "templates": sum(1 for f in frames if f["template"]),
        "outcomes": dict(outcomes.most_common()),
        "median_best": _median([m["best"] for m in matches if m["best"] is not None]),
        "median_runner_up": _median(
            [m["runner_up"] for m in matches if m["runner_up"] is not None]
        ),
    }


def model_facts(parts: FaceParts) -> dict[str, Any]:
    """The model decisions are made with and since when, the templates of each model, and the
    change under way (terminal/faces/switch.py): a decision at time t used the model in use
    since the newest ``face_model`` event before t."""
    choice = parts.choice
    store = parts.faces.store
    facts: dict[str, Any] = {
        "in_use": parts.verifier.model_id,
        "since": store.state(SINCE_STATE),
        "templates": parts.faces.models(),
    }
    if choice.target_model is not None:
        facts["switch"] = {
            "to": choice.target_model,
            "share_needed": choice.share_needed,
            "share_now": round(parts.faces.coverage(choice.target_model), 4),
        }
    return facts


def face_report(
    parts: FaceParts | None,
    *,
    frames: int = 1,
    show_holder: bool = False,
    budget: float = BUDGET_SECONDS,
    clock: Clock = time.monotonic,
) -> dict[str, Any]:
    """``frames`` new frames through the pipeline with the configured gate, within ``budget``."""
    if parts is None:
        return _not_enabled()
    frames = min(max(frames, 1), FACE_MAX_FRAMES)
    verifier = parts.verifier
    settings = verifier.settings
    gate = parts.section.quality
    result: dict[str, Any] = {
        "enabled": True,
        "backend": parts.encoder.name,
        "model_id": verifier.model_id,
        "model": model_facts(parts),
        "gallery_size": verifier.gallery_size(),
        "thresholds": {
            "verify": settings.verify_threshold,
            "identify": settings.identify_threshold,
            "identify_margin": settings.identify_margin,
        },
        "gate": _gate_facts(gate),
        "liveness_configured": parts.liveness is not None,
        "camera": _health(parts.camera.health()),
        "frames_requested": frames,
        "holder_shown": show_holder,
    }
    deadline = clock() + budget
    seq = -1
    done: list[dict[str, Any]] = []
    error = None
    while len(done) < frames:
        remaining = deadline - clock()
        if remaining <= 0:
            break
        try:
            captured = parts.camera.latest(seq, timeout=min(FRAME_WAIT_SECONDS, remaining))
        except DriverError as exc:
            error = mask_digits(str(exc))
            break
        if captured is None:
            error = f"no new frame from the camera within {FRAME_WAIT_SECONDS:g} s"
            break
        seq = captured.seq
        done.append(_one_frame(parts, gate, captured, show_holder, clock))
    result["frames"] = done
    result["summary"] = _summary(done)
    if not done:
        result["level"] = Level.FAILED
        result["error"] = error or "no frame from the camera"
        return result
    if len(done) < frames:
        result["note"] = f"{len(done)} of {frames} frames analysed: " + (
            error or f"the {budget:g} s time limit was reached"
        )
    return result
