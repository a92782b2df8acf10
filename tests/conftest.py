import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from terminal.store import Store

# CI machines are slow and shared: no per-example deadline, more examples than a laptop run.
settings.register_profile(
    "ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = Store.open(tmp_path / "terminal.db")
    yield opened
    opened.close()
