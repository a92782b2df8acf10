"""A real mosquitto on a free loopback port, started and stopped by the tests themselves."""

from pathlib import Path

import pytest

from devtools.mosquitto import Mosquitto, find_mosquitto, free_port, wait_for

__all__ = ["Broker", "free_port", "wait_for"]


class Broker(Mosquitto):
    """Skips the test when mosquitto is missing, instead of failing it."""

    def __init__(self, directory: Path, extra: str = "", port: int | None = None) -> None:
        if find_mosquitto() is None:
            pytest.skip("mosquitto is not installed (./dev setup installs it)")
        super().__init__(directory, extra=extra, port=port)
