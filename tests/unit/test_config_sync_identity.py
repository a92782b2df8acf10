"""A terminal proves who it is to a remote broker: TLS without a client certificate (or a
password) is refused, since the broker's ACL could not tell it from any other client."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from sync.settings import SyncSection

KEYS = {"hq-69f914cda98eda41": "h6YLfjw80HyEmq0eRnix/qEbG753buVo8XZp0fvGxZc="}


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    made = {}
    for name in ("ca.crt", "client.crt", "client.key", "password"):
        (tmp_path / name).write_text("x")
        made[name] = f"file:{tmp_path / name}"
    return made


def _section(**values: object) -> SyncSection:
    return SyncSection.model_validate({"enabled": True, "hq_keys": KEYS, **values})


def test_tls_to_a_remote_broker_needs_a_client_identity(files: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="without a client certificate is refused"):
        _section(broker_host="mqtt.example.org", tls_ca=files["ca.crt"])
    _section(
        broker_host="mqtt.example.org",
        tls_ca=files["ca.crt"],
        tls_cert=files["client.crt"],
        tls_key=files["client.key"],
    )
    _section(
        broker_host="mqtt.example.org",
        tls_ca=files["ca.crt"],
        username="gate-01",
        password=files["password"],
    )
    with pytest.raises(ValidationError, match="username needs password"):
        _section(broker_host="mqtt.example.org", tls_ca=files["ca.crt"], username="gate-01")


def test_loopback_is_still_fine_without_one(files: dict[str, str]) -> None:
    _section(broker_host="127.0.0.1")
    _section(broker_host="localhost", tls_ca=files["ca.crt"])
