"""``ykt diag camera`` and ``ykt diag face`` against a running App with faces enabled.

The App runs in this process on simulated devices (its tap loop on a thread, the diag socket on
another) with the real encoder (YuNet + dlib ResNet) and the simulated camera showing real photos
from the shared test data; the commands go through the socket like a technician's.
"""

import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.cells import cell_len

from drivers.camera.sim import SimCameraControl
from drivers.face.yunet import YUNET_2023MAR_SHA256
from terminal import config as config_module
from terminal.app import App
from terminal.config.diag import DiagSection
from terminal.devices import SimControls
from terminal.diag.faces import brightness
from terminal.diag.protocol import Exit
from terminal.diag.server import serving
from terminal.faces.enrol import enrol_photo
from terminal.store import Store
from tests.diag.conftest import DiagDaemon, run_diag, run_json
from tests.faces.conftest import PERSON_A, PERSON_B, TURNED_AWAY, need_dlib, need_yunet, photo_path
from tests.fixtures import holder_name, seed

pytestmark = pytest.mark.integration

ENROLLED = {"H001": PERSON_B[0], "H002": PERSON_A[0]}


class FaceTerminal:
    def __init__(self, app: App, camera: SimCameraControl, socket: Path) -> None:
        self.app = app
        self.camera = camera
        self.socket = socket

    def show(self, relative: str | None) -> None:
        if relative is None:
            self.camera.clear()
        else:
            self.camera.show_files([photo_path(relative)])

    def diag(self, *argv: str) -> tuple[int, str]:
        code, out, err = run_diag(*argv, "--socket", str(self.socket))
        assert "Traceback" not in err, err
        assert_fits(out)
        return code, out

    def json(self, *argv: str) -> tuple[int, dict[str, Any]]:
        return run_json(*argv, "--socket", str(self.socket))


def _config(state: Path, socket: Path) -> Any:
    return config_module.parse(
        {
            "terminal": {"id": "diag-face-01", "site": "demo-centre", "state_dir": str(state)},
            "diag": {"socket": str(socket), "group": "ykt-diag"},
            "door": {"id": "east-gate", "direction": "in", "open_seconds": 2},
            "reader": {"driver": "sim"},
            "gate": {"driver": "sim", "passage": "pass", "passage_delay_seconds": 0.05},
            "faces": {
                "enabled": True,
                "backend": "onnx",
                "recognizer": "dlib",
                "yunet": {"path": str(need_yunet().path), "sha256": YUNET_2023MAR_SHA256},
                "camera": {"driver": "sim"},
            },
        }
    )


@pytest.fixture(scope="module")
def terminal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaceTerminal]:
    need_dlib()
    need_yunet()
    photo_path(PERSON_B[0])  # skips without the shared photos
    state = tmp_path_factory.mktemp("faces") / "state"
    store = Store.open(state / "terminal.db")
    seed(store)
    store.close()
    socket_dir = Path(tempfile.mkdtemp(prefix="ykt-diag-"))
    config = _config(state, socket_dir / "diag.sock")
    camera = SimCameraControl(640, 480)
    app = App(config, sim=SimControls(camera=camera))
    stop = threading.Event()
    loop = threading.Thread(target=app.run, args=(stop,), name="tap-loop", daemon=True)
    try:
        parts = app.face_parts
        assert parts is not None
        for holder_id, relative in ENROLLED.items():
            enrolled = enrol_photo(
                parts.encoder,
                photo_path(relative).read_bytes(),
                config.faces.quality.for_enrolment(),
            )
            assert enrolled.template is not None, enrolled.rejection
            parts.faces.put_template(
                holder_id, enrolled.template, source="device", at=app.clock.now()
            )
            parts.verifier.refresh(holder_id)
        with serving(app, DiagSection(socket=socket_dir / "diag.sock")) as server:
            assert server is not None
            loop.start()
            yield FaceTerminal(app, camera, server.path)
    finally:
        stop.set()
        if loop.is_alive():
            loop.join(timeout=10)
        app.close()
        shutil.rmtree(socket_dir, ignore_errors=True)


def assert_fits(text: str) -> None:
    widest = max((cell_len(line.rstrip()) for line in text.splitlines()), default=0)
    assert widest <= 80, text


def _no_personal_data(text: str, *, holder_ids: bool = True) -> None:
    """No name (not even masked), no holder id unless asked, no template or image."""
    for holder_id in ENROLLED:
        name = holder_name(holder_id)
        assert name not in text and name[0] + "*" not in text
        if holder_ids:
            assert holder_id not in text
    assert len(text) < 20_000  # a 128-value template or any image would not fit


def _no_long_lists(value: Any) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _no_long_lists(item)
    elif isinstance(value, list):
        assert len(value) <= 20, value
        assert sum(isinstance(v, float) for v in value) <= 4, value
        for item in value:
            _no_long_lists(item)


def test_camera_reports_the_newest_frame(terminal: FaceTerminal) -> None:
    terminal.show(PERSON_B[1])
    code, out = terminal.diag("camera")
    assert code == Exit.OK
    assert "640x480" in out and "brightness" in out and "simulated" in out
    code, result = terminal.json("camera")
    assert code == Exit.OK and result["level"] == "ok" and result["enabled"] is True
    frame = result["frame"]
    assert (frame["width"], frame["height"]) == (640, 480)
    assert 0 <= frame["age_ms"] < 2000
    assert 20 < frame["brightness"] < 235
    assert result["health"]["ok"] is True


def test_camera_without_a_frame_is_a_device_fault(terminal: FaceTerminal) -> None:
    terminal.camera.unplug()
    try:
        code, out = terminal.diag("camera")
        assert code == Exit.FAILED
        assert "no frame" in out and "unplugged" in out
        code, result = terminal.json("face")
        assert code == Exit.FAILED and result["frames"] == [] and "no new frame" in result["error"]
    finally:
        terminal.camera.unplug(False)


def test_good_face_gives_a_template_and_scores(terminal: FaceTerminal) -> None:
    terminal.show(PERSON_B[1])
    code, result = terminal.json("face")
    assert code == Exit.OK
    assert result["model_id"] == "dlib-resnet-v1" and result["gallery_size"] == 2
    assert result["thresholds"]["verify"] > 0.9 and result["thresholds"]["identify"] > 0.9
    assert result["liveness_configured"] is False
    [frame] = result["frames"]
    assert frame["faces"] == 1 and frame["template"] is True
    assert frame["rejection"] is None and frame["rejections"] == []
    quality = frame["quality"]
    assert quality["eye_distance"] >= result["gate"]["min_eye_distance"]
    assert quality["sharpness"] >= result["gate"]["min_sharpness"]
    assert abs(quality["yaw"]) <= result["gate"]["max_yaw"]
    match = frame["match"]
    # Another photo of the enrolled person: above the 1:N threshold and well ahead of the other.
    assert match["best"] >= result["thresholds"]["identify"]
    assert match["runner_up"] < match["best"] - 0.03
    assert match["identify"] == "match"
    assert "holder_id" not in match
    _no_personal_data(json.dumps(result, ensure_ascii=False))
    _no_long_lists(result)
    code, out = terminal.diag("face")
    assert code == Exit.OK
    assert "accepted, template made" in out and "best score" in out and "runner-up" in out
    assert "liveness" in out and "not configured" in out
    _no_personal_data(out)


def test_turned_away_face_is_refused_for_pose(terminal: FaceTerminal) -> None:
    terminal.show(TURNED_AWAY)
    code, result = terminal.json("face")
    assert code == Exit.OK
    [frame] = result["frames"]
    assert frame["faces"] >= 1
    assert frame["rejection"] == "pose" and "pose" in frame["rejections"]
    assert frame["template"] is False and "match" not in frame
    assert (
        abs(frame["quality"]["yaw"]) > result["gate"]["max_yaw"]
        or abs(frame["quality"]["roll_degrees"]) > result["gate"]["max_roll_degrees"]
    )
    code, out = terminal.diag("face")
    assert code == Exit.OK
    assert "refused: pose" in out and "Please face the camera" in out
    _no_personal_data(out)


def test_empty_frame_has_no_face(terminal: FaceTerminal) -> None:
    terminal.show(None)
    code, result = terminal.json("face")
    assert code == Exit.OK
    [frame] = result["frames"]
    assert frame["faces"] == 0 and frame["rejection"] == "no_face" and "quality" not in frame
    code, out = terminal.diag("face")
    assert "no face in the frame" in out


def test_frames_are_summarised(terminal: FaceTerminal) -> None:
    terminal.camera.show_files([photo_path(PERSON_B[1]), photo_path(TURNED_AWAY)])
    code, result = terminal.json("face", "--frames", "4")
    assert code == Exit.OK
    assert len(result["frames"]) == 4
    assert len({f["seq"] for f in result["frames"]}) == 4  # four new frames, not one four times
    summary = result["summary"]
    assert summary["outcomes"] == {"accepted": 2, "pose": 2}
    assert summary["templates"] == 2 and summary["median_best"] >= 0.9
    code, out = terminal.diag("face", "--frames", "4")
    assert code == Exit.OK and "accepted 2" in out and "pose 2" in out and "median best" in out
    _no_personal_data(out)
    code, _ = terminal.diag("face", "--frames", "21")
    assert code == Exit.USAGE


def test_holder_id_only_when_asked(terminal: FaceTerminal) -> None:
    terminal.show(PERSON_B[1])
    code, result = terminal.json("face", "--show-holder")
    assert code == Exit.OK
    assert result["frames"][0]["match"]["holder_id"] == "H001"
    _no_personal_data(json.dumps(result, ensure_ascii=False), holder_ids=False)
    code, out = terminal.diag("face", "--show-holder")
    assert "H001" in out
    _no_personal_data(out, holder_ids=False)


def test_faces_disabled_is_not_available(door: DiagDaemon) -> None:
    for command in ("camera", "face"):
        code, out, _ = run_diag(command, "--socket", str(door.socket))
        assert code == Exit.NOT_AVAILABLE
        assert "faces are not enabled" in out
        code, result = run_json(command, "--socket", str(door.socket))
        assert code == Exit.NOT_AVAILABLE and result["enabled"] is False


def test_brightness_is_mean_luma() -> None:
    assert brightness(np.zeros((4, 4, 3), np.uint8)) == 0
    assert brightness(np.full((4, 4, 3), 255, np.uint8)) == 255
    blue = np.zeros((4, 4, 3), np.uint8)
    blue[..., 0] = 255
    assert brightness(blue) == pytest.approx(0.114 * 255, abs=0.1)
