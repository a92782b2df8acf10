"""Face stills are personal data: their retention runs out whether or not faces are still on."""

from datetime import timedelta
from pathlib import Path

from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.devices import SimControls
from terminal.store import Store
from terminal.store.faces import FaceStore
from tests.factories import at, sim_door_config

NOON = at(2026, 11, 23, "12:00")


def test_stills_expire_on_a_terminal_whose_faces_are_now_off(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = Store.open(state / "terminal.db")
    faces = FaceStore(store)
    # Kept while faces were on: one past its retention, one not yet.
    old = faces.add_still(b"\xff\xd8old", kind="spoof", at=NOON - timedelta(days=40),
                          retention=timedelta(days=30))  # fmt: skip
    new = faces.add_still(b"\xff\xd8new", kind="spoof", at=NOON, retention=timedelta(days=30))
    store.close()
    config = config_module.parse(sim_door_config(state, tmp_path / "diag.sock"))
    app = App(config, clock=SetClock(NOON), sim=SimControls(), threaded=False)
    try:
        assert app.face_parts is None  # faces are off here now
        app.housekeep(NOON)
        left = FaceStore(app.store)
        assert left.still(old) is None and left.still(new) is not None
    finally:
        app.close()
