"""The [qr] section wired: the QR reader is built beside the card reader when codes are taken,
its codes reach the flow through the tap loop, and ``ykt diag qr`` judges a code on the real
path without spending it."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import segno

from drivers.camera.images import encode_jpeg
from drivers.qr.sim import SimQrReader
from models.errors import ConfigError, DriverError
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.config import Config
from terminal.devices import SimControls
from terminal.diag.commands import Commands
from terminal.diag.live import LiveTerminal
from terminal.diag.protocol import DiagError, ErrorCode
from terminal.diag.qr import render, text_from_image
from terminal.lifecycle import StepError
from tests.factories import at, sim_door_config
from tests.fixtures import seed
from tests.loops import settle
from tests.qr_tokens import PhoneKey

MONDAY_9 = at(2026, 11, 23, "09:00")
NOW = int(MONDAY_9.timestamp())
PHONE = PhoneKey("H005", "q-1", bytes([5]) * 32)  # card 5 was reported lost


def config(tmp_path: Path, **qr: Any) -> Config:
    data = sim_door_config(tmp_path / "state", tmp_path / "diag.sock")
    if qr:
        data["qr"] = qr
    return config_module.parse(data)


def with_keys(app: App) -> None:
    seed(app.store)
    with app.store.write() as conn:
        conn.execute(
            "UPDATE holders SET qr_keys = ? WHERE id = 'H005'",
            (json.dumps([{"k": PHONE.key_id, "pub": PHONE.pub}]),),
        )


def test_codes_are_off_unless_configured(tmp_path: Path) -> None:
    section = config(tmp_path).qr
    assert (section.enabled, section.skew_seconds) == (False, 5)
    app = App(config(tmp_path), sim=SimControls(qr=SimQrReader()), threaded=False)
    try:
        assert app.qr_reader is None and app.loop.qr_reader is None
    finally:
        app.close()


def test_a_configured_reader_feeds_the_flow_and_is_closed_with_the_app(tmp_path: Path) -> None:
    reader = SimQrReader()
    clock = SetClock(MONDAY_9)
    cfg = config(tmp_path, enabled=True, driver="sim", skew_seconds=2)
    app = App(cfg, clock=clock, sim=SimControls(qr=reader), threaded=False)
    try:
        with_keys(app)
        assert app.loop.qr_reader is reader
        assert app.door_flow is not None and app.door_flow.settings.qr_skew_seconds == 2
        reader.show(PHONE.token(NOW, NOW + 30))
        reader.hide()
        settle(app.loop, clock)
        door = [r for r in app.store.records() if r["kind"] == "door"]
        assert [(r["reason"], r["credential"]) for r in door] == [("allowed", "qr")]
    finally:
        app.close()
    assert not reader.health().ok  # closed with the app


def test_a_reader_that_cannot_be_built_names_its_step(tmp_path: Path) -> None:
    # The camera decoder shares the face camera: with faces off there is none to share.
    with pytest.raises(StepError, match="reader") as raised:
        App(config(tmp_path, enabled=True, driver="camera"), sim=SimControls(), threaded=False)
    assert isinstance(raised.value.__cause__, DriverError)
    assert "no camera" in str(raised.value.__cause__)
    with pytest.raises(ConfigError, match="skew_seconds"):
        config(tmp_path, enabled=True, skew_seconds=61)


def test_diag_judges_a_code_without_spending_it(tmp_path: Path) -> None:
    live = LiveTerminal()
    clock = SetClock(MONDAY_9)
    cfg = config(tmp_path)
    app = App(cfg, clock=clock, sim=SimControls(), threaded=False, hooks=live.hooks)
    try:
        with_keys(app)
        live.bind(app)
        commands = Commands(cfg, live=live)
        token = PHONE.token(NOW - 10, NOW + 20)
        result = commands.run("qr", {"text": token})
        assert result["decision"]["allowed"] is True
        assert result["decision"]["credential"] == "qr"
        assert result["code"] == {
            "verified": True,
            "well_formed": True,
            "holder_id": "H005",
            "key": "q-1",
            "issued": NOW - 10,
            "expires": NOW + 20,
            "expires_in_s": 20,
            "nonce_used": False,
        }
        assert result["would_record"][0]["credential"] == "qr"
        assert "[qr] enabled = false" in result["note"]
        assert app.store.records() == []  # nothing journalled, nothing spent
        assert commands.run("qr", {"text": token})["decision"]["allowed"] is True
        forged = PhoneKey("H005", "q-1", bytes([6]) * 32).token(NOW, NOW + 30)
        refused = commands.run("qr", {"text": forged})
        assert refused["decision"]["reason"] == "qr_invalid"
        assert refused["code"]["verified"] is False and refused["code"]["holder_id"] == "H005"
        junk = commands.run("qr", {"text": "hello"})
        assert junk["code"] == {
            "verified": False,
            "well_formed": False,
            "problem": "not a YKT1 code (starts 'hello')",
        }
        render(junk)  # the human form of a code that is no code
        render(result)
        with pytest.raises(DiagError) as no_reader:
            commands.run("qr", {"timeout": 1})
        assert no_reader.value.code is ErrorCode.NOT_AVAILABLE
        with pytest.raises(DiagError):
            commands.run("qr", {"text": "x" * 5000})
    finally:
        live.detach()
        app.close()


def test_a_photo_of_a_code_is_read_for_diag(tmp_path: Path) -> None:
    token = PHONE.token(NOW, NOW + 30)
    segno.make(token, error="m", mode="byte").save(tmp_path / "code.png", scale=6)
    assert text_from_image(tmp_path / "code.png") == token
    (tmp_path / "blank.png").write_bytes((tmp_path / "code.png").read_bytes()[:50])
    with pytest.raises(DiagError):
        text_from_image(tmp_path / "blank.png")


def test_diag_reads_a_photo_as_the_gate_camera_would(tmp_path: Path) -> None:
    from bench.qr_decode import code_frame  # noqa: PLC0415 - segno and OpenCV: test data only

    token = PHONE.token(NOW, NOW + 30)
    small = code_frame(token, 2.5)  # 2.5 px modules: too small for OpenCV's multi-code search
    assert small is not None
    photo = tmp_path / "small.jpg"
    photo.write_bytes(encode_jpeg(small, 95))
    assert text_from_image(photo) == token
    speck = tmp_path / "speck.jpg"
    speck.write_bytes(encode_jpeg(np.zeros((1, 1, 3), np.uint8)))
    with pytest.raises(DiagError, match=r"no QR code found in speck\.jpg"):
        text_from_image(speck)
