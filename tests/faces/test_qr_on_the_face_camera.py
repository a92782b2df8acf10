"""An electronic-card code held up to a gate's face camera: the QR decoder reads the frames the
camera hands the faces too, and the code opens the door through the loop, once while held."""

import threading
import time
from pathlib import Path

from drivers.camera.sim import SimCameraControl
from drivers.face.yunet import YUNET_2023MAR_SHA256
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.devices import SimControls
from terminal.flows.door import TapOutcome
from tests.faces.conftest import YUNET, need_dlib, need_yunet
from tests.factories import at, sim_door_config
from tests.fixtures import seed
from tests.qr_tokens import PhoneKey
from tests.sync.broker import wait_for

MONDAY_9 = at(2026, 11, 23, "09:00")
NOW = int(MONDAY_9.timestamp())
PHONE = PhoneKey("H005", "q-1", bytes([5]) * 32)  # card 5 was reported lost


def test_a_code_on_the_face_camera_is_decided_once_while_it_is_held(tmp_path: Path) -> None:
    need_yunet()
    need_dlib()
    from bench.qr_decode import code_frame  # noqa: PLC0415 - segno and OpenCV: test data only

    data = sim_door_config(tmp_path / "state", tmp_path / "diag.sock")
    data["faces"] = {
        "enabled": True,
        "recognizer": "dlib",
        "yunet": {"path": str(YUNET), "sha256": YUNET_2023MAR_SHA256},
        "camera": {"driver": "sim"},
    }
    data["qr"] = {"enabled": True, "driver": "camera", "decode_fps": 10, "gone_seconds": 0.5}
    camera = SimCameraControl(640, 480)
    app = App(config_module.parse(data), clock=SetClock(MONDAY_9), sim=SimControls(camera=camera))
    outcomes: list[TapOutcome] = []
    assert app.door_flow is not None
    app.door_flow.listeners.append(
        lambda m: outcomes.append(m) if isinstance(m, TapOutcome) else None
    )
    seed(app.store)
    with app.store.write() as conn:
        conn.execute(
            "UPDATE holders SET qr_keys = ? WHERE id = 'H005'",
            (f'[{{"k": "{PHONE.key_id}", "pub": "{PHONE.pub}"}}]',),
        )
    stop = threading.Event()
    loop = threading.Thread(target=app.run, args=(stop,), name="tap-loop")
    loop.start()
    try:
        frame = code_frame(PHONE.token(NOW, NOW + 30), 4.0)
        assert frame is not None
        camera.show([frame])  # held in view: the same frame, frame after frame
        assert wait_for(lambda: len(outcomes) >= 1, timeout=20)
        time.sleep(1.0)  # still held: one presentation, not a replay refused every frame
        assert [(o.decision.reason, o.decision.credential) for o in outcomes] == [("allowed", "qr")]
    finally:
        stop.set()
        loop.join(10)
        app.close()
