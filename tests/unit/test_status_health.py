"""The status HQ gets names every device PROTOCOL.md lists: reader, SAM, camera, gate, disk and
the clock source; disk and clock in words an operator can act on."""

from pathlib import Path

from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.devices import SimControls
from terminal.diag.facts import clock_state, disk_state
from tests.factories import at


def test_the_status_health_covers_every_device(tmp_path: Path) -> None:
    config = config_module.parse(
        {
            "terminal": {"id": "gate-01", "site": "demo", "state_dir": str(tmp_path / "state")},
            "diag": {"socket": str(tmp_path / "diag.sock")},
            "reader": {"driver": "sim"},
            "door": {"id": "east-gate"},
            "gate": {"driver": "sim"},
        }
    )
    app = App(config, clock=SetClock(at(2026, 11, 23, "12:00")), sim=SimControls(), threaded=False)
    try:
        health = dict(app._health())
    finally:
        app.close()
    assert set(health) == {"reader", "gate", "sam", "disk", "clock"}  # no camera: faces off
    assert health["reader"] == health["gate"] == "ok"
    assert health["sam"].startswith("none")
    assert health["disk"] == "ok" or health["disk"].startswith(("low:", "full:"))
    assert health["clock"] in ("ntp", "not synchronised", "unknown", "timedatectl", "chrony")


def test_disk_and_clock_states() -> None:
    assert disk_state({"free_bytes": 10**10, "free_pct": 50.0}) == "ok"
    assert disk_state({"free_bytes": 150_000_000, "free_pct": 50.0}) == "low: 150 MB free"
    assert disk_state({"free_bytes": 5_000_000, "free_pct": 1.0}) == "full: 5 MB free"
    assert disk_state({}) == "unknown"
    assert clock_state({"ntp_synchronized": True, "source": "timedatectl"}, False) == "ntp"
    assert clock_state({"ntp_synchronized": False, "source": "timedatectl"}, False) == (
        "not synchronised"
    )
    assert clock_state({"ntp_synchronized": None, "source": "unknown"}, False) == "unknown"
    assert clock_state({"ntp_synchronized": True}, True).startswith("behind the journal")
