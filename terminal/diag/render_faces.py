"""Human output of ``ykt diag camera`` and ``ykt diag face`` (the dicts terminal.diag.faces makes).

Kept apart from :mod:`terminal.diag.render` only for size; the same conventions apply: 80
columns, ASCII markers, the same facts as ``--json``.
"""

from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from terminal.diag.render import DASH, grid, headline, health_text, pairs, value


def _num(v: Any, digits: int = 1) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) and not isinstance(v, bool) else DASH


def _frame_text(frame: Mapping[str, Any]) -> str:
    return (
        f"{frame.get('width')}x{frame.get('height')}, seq {frame.get('seq')}, "
        f"{value(frame.get('age_ms'))} ms old"
    )


def camera(result: Mapping[str, Any]) -> RenderableType:
    frame = result.get("frame")
    configured = result.get("configured") or {}
    if result.get("error"):
        title = f"camera: {result['error']}"
    else:
        title = f"camera: a frame came ({result.get('driver')} driver)"
    rows: list[tuple[str, Any]] = [("health", health_text(result.get("health")))]
    if frame:
        rows += [
            ("frame", _frame_text(frame)),
            ("brightness", f"{_num(frame.get('brightness'))} of 255 (mean luma)"),
        ]
    rows.append(
        (
            "configured",
            f"{configured.get('width')}x{configured.get('height')} at "
            f"{value(configured.get('fps'))} fps, driver {result.get('driver')}",
        )
    )
    rows += [("note", note) for note in result.get("notes") or []]
    return Group(headline(result.get("level"), title), pairs(rows))


def _verdict(frame: Mapping[str, Any]) -> str:
    rejection = frame.get("rejection")
    if rejection == "no_face":
        return "no face in the frame"
    if rejection:
        return f"refused: {rejection} ({frame.get('says')})"
    match = frame.get("match") or {}
    best = match.get("best")
    return "accepted, template made" + (
        f", best score {_num(best, 4)}" if best is not None else ", gallery empty"
    )


def _liveness(result: Mapping[str, Any], frame: Mapping[str, Any]) -> str:
    if not result.get("liveness_configured"):
        return "not configured"
    live = frame.get("liveness")
    if not live:
        return "not checked (no accepted face)"
    return f"{'live' if live.get('live') else 'NOT LIVE'}, score {_num(live.get('score'), 3)}"


def _frame_rows(result: Mapping[str, Any], frame: Mapping[str, Any]) -> list[tuple[str, Any]]:
    gate = result.get("gate") or {}
    quality = frame.get("quality") or {}
    rows: list[tuple[str, Any]] = [
        ("frame", f"{_frame_text(frame)}, analysed in {value(frame.get('ms'))} ms"),
        ("faces", frame.get("faces")),
    ]
    if quality:
        low, high = (gate.get("pitch_range") or [None, None])[:2]
        rows += [
            (
                "eye distance",
                f"{_num(quality.get('eye_distance'))} px "
                f"(min {value(gate.get('min_eye_distance'))})",
            ),
            (
                "sharpness",
                f"{_num(quality.get('sharpness'))} (min {value(gate.get('min_sharpness'))})",
            ),
            (
                "roll",
                f"{_num(quality.get('roll_degrees'))} deg "
                f"(max {value(gate.get('max_roll_degrees'))})",
            ),
            ("yaw", f"{_num(quality.get('yaw'), 3)} (max {value(gate.get('max_yaw'))})"),
            ("pitch", f"{_num(quality.get('pitch'), 3)} ({value(low)}-{value(high)})"),
            ("detector", f"{_num(quality.get('score'), 3)} (min {value(gate.get('min_score'))})"),
        ]
    failed = frame.get("rejections") or []
    if failed:
        rows.append(("limits failed", Text(", ".join(failed), style="red")))
    rows.append(("liveness", _liveness(result, frame)))
    match = frame.get("match")
    if match:
        rows += [
            ("best score", _num(match.get("best"), 4)),
            ("runner-up", _num(match.get("runner_up"), 4)),
            ("1:N result", match.get("identify")),
        ]
        if "holder_id" in match:
            rows.append(("best holder", match["holder_id"]))
    return rows


def _frames_grid(result: Mapping[str, Any]) -> RenderableType:
    frames = result.get("frames") or []
    holders = bool(result.get("holder_shown"))
    headers = ["seq", "faces", "result", "eye", "sharp", "roll", "yaw", "det", "best", "2nd"]
    if holders:
        headers.append("holder")
    rows = []
    for frame in frames:
        quality = frame.get("quality") or {}
        match = frame.get("match") or {}
        row = [
            frame.get("seq"),
            frame.get("faces"),
            Text(
                frame.get("rejection") or "accepted",
                style="red" if frame.get("rejection") else "green",
            ),
            _num(quality.get("eye_distance")),
            _num(quality.get("sharpness")),
            _num(quality.get("roll_degrees")),
            _num(quality.get("yaw"), 2),
            _num(quality.get("score"), 2),
            _num(match.get("best"), 4),
            _num(match.get("runner_up"), 4),
        ]
        if holders:
            row.append(match.get("holder_id"))
        rows.append(row)
    return grid(headers, rows)


def face(result: Mapping[str, Any]) -> RenderableType:
    frames = result.get("frames") or []
    thresholds = result.get("thresholds") or {}
    summary = result.get("summary") or {}
    if not frames:
        title = f"face: {result.get('error')}"
    elif len(frames) == 1:
        title = f"face: {_verdict(frames[0])}"
    else:
        outcomes = ", ".join(f"{k} {v}" for k, v in (summary.get("outcomes") or {}).items())
        title = f"face: {len(frames)} frames - {outcomes}"
    rows: list[tuple[str, Any]] = [
        (
            "model",
            f"{result.get('model_id')} ({result.get('backend')}), gallery "
            f"{value(result.get('gallery_size'))} templates",
        ),
        (
            "thresholds",
            f"verify {value(thresholds.get('verify'))}, identify "
            f"{value(thresholds.get('identify'))} "
            f"(margin {value(thresholds.get('identify_margin'))})",
        ),
        ("camera", health_text(result.get("camera"))),
    ]
    rows[1:1] = _model_rows(result.get("model") or {})
    parts: list[RenderableType] = [headline(result.get("level"), title)]
    if len(frames) == 1:
        rows += _frame_rows(result, frames[0])
        parts.append(pairs(rows))
    else:
        if frames:
            rows += [
                ("templates", f"{summary.get('templates')} of {summary.get('frames')} frames"),
                ("median best", _num(summary.get("median_best"), 4)),
                ("median 2nd", _num(summary.get("median_runner_up"), 4)),
            ]
        parts.append(pairs(rows))
        if frames:
            parts.append(_frames_grid(result))
    if result.get("note"):
        parts.append(Text(str(result["note"]), style="yellow"))
    if any("match" in f for f in frames) and not result.get("holder_shown"):
        parts.append(Text("Who the best match is stays hidden (--show-holder).", style="dim"))
    return Group(*parts)


RENDERERS: dict[str, Callable[[Mapping[str, Any]], RenderableType]] = {
    "camera": camera,
    "face": face,
}


def _model_rows(model: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    if model.get("since"):
        rows.append(("in use since", model["since"]))
    templates = model.get("templates") or {}
    if len(templates) > 1:
        rows.append(("templates", ", ".join(f"{m} {n}" for m, n in templates.items())))
    switch = model.get("switch")
    if switch:
        rows.append((
            "switching to",
            f"{switch['to']} at {switch['share_needed']:.0%} of holders "
            f"(now {switch['share_now']:.1%})",
        ))  # fmt: skip
    return rows
