"""HQ's diag_bundle is wired when the App is built, not patched in afterwards."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from sync.engine import CommandRefused
from terminal import config as config_module
from terminal.app import App
from terminal.config import Config
from terminal.daemon import _support_bundle
from terminal.devices import SimControls
from tests.factories import sim_door_config


def test_the_bundle_provider_given_at_build_answers_hq(tmp_path: Path) -> None:
    config = config_module.parse(sim_door_config(tmp_path / "state", tmp_path / "diag.sock"))
    seen: list[Config] = []

    def provider(given: Config, sync: Any) -> Mapping[str, Any]:
        seen.append(given)
        return {"level": "ok"}

    app = App(config, sim=SimControls(), threaded=False, bundle=provider)
    try:
        assert app.remote.handle("diag_bundle", {}) == {"bundle": {"level": "ok"}}
        assert seen == [config]
    finally:
        app.close()
    bare = App(config, sim=SimControls(), threaded=False)
    try:
        with pytest.raises(CommandRefused, match="not available"):
            bare.remote.handle("diag_bundle", {})
    finally:
        bare.close()


def test_the_daemons_provider_is_the_redacted_diag_bundle(tmp_path: Path) -> None:
    config = config_module.parse(sim_door_config(tmp_path / "state", tmp_path / "diag.sock"))
    app = App(config, sim=SimControls(), threaded=False, bundle=_support_bundle)
    try:
        bundle = app.remote.handle("diag_bundle", {})["bundle"]
    finally:
        app.close()
    assert {"level", "status", "config"} <= set(bundle)
