"""A registration photo leaves the database once it is enrolled or refused (docs/privacy.md).

The photo comes the way HQ sends it (``face.upsert`` through the sync port, into a real SQLite
file) and is looked for afterwards in every value of every row of every table.
"""

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from drivers.camera.images import encode_jpeg
from drivers.face.interface import Encoder
from drivers.face.settings import QualitySettings
from sync.changes import parse_batch
from terminal.faces.cli import EXIT_USAGE, run
from terminal.faces.enrol import enrol_pending
from terminal.store import Store
from terminal.store.faces import FaceStore
from terminal.store.sync_port import StoreSyncPort
from tests.faces.conftest import PERSON_A, photo
from tests.sync.messages import TID, batch, change

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
ENROL = QualitySettings().for_enrolment()


@pytest.fixture
def port(tmp_path: Path) -> Iterator[StoreSyncPort]:
    store = Store.open(tmp_path / "terminal.db")
    yield StoreSyncPort(store, TID)
    store.close()


def send_photo(port: StoreSyncPort, holder_id: str, jpeg: bytes, seq: int) -> None:
    photo_b64 = base64.b64encode(jpeg).decode()
    parsed = parse_batch(batch([change(seq, "face.upsert", holder_id=holder_id, photo=photo_b64)]))
    port.apply_batch(parsed.first, parsed.last, parsed.changes)


def rows_holding(store: Store, needle: bytes) -> list[str]:
    """``table.column`` of every value that contains ``needle``."""
    found = []
    with store.read() as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
        for table in tables:
            cursor = conn.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    text = str(value).encode("latin-1", "replace")
                    data = value if isinstance(value, bytes) else text
                    if needle in data:
                        found.append(f"{table}.{column}")
    return found


def test_a_photo_is_gone_from_every_row_once_enrolled(
    port: StoreSyncPort, dlib_encoder: Encoder
) -> None:
    jpeg = encode_jpeg(photo(PERSON_A[0]), 95)
    send_photo(port, "H1", jpeg, 1)
    assert rows_holding(port.store, jpeg[-256:]) == ["faces.photo"]
    result = enrol_pending(FaceStore(port.store), dlib_encoder, ENROL, now=NOW)
    assert result.enrolled == ["H1"]
    assert rows_holding(port.store, jpeg[-256:]) == []
    assert FaceStore(port.store).get_template("H1", "dlib-resnet-v1") is not None


def test_a_photo_is_gone_from_every_row_once_refused(
    port: StoreSyncPort, dlib_encoder: Encoder
) -> None:
    jpeg = encode_jpeg(np.full((480, 600, 3), (235, 206, 170), np.uint8), 95)  # nobody in it
    send_photo(port, "H2", jpeg, 1)
    assert rows_holding(port.store, jpeg[-256:]) == ["faces.photo"]
    result = enrol_pending(FaceStore(port.store), dlib_encoder, ENROL, now=NOW)
    assert result.rejected == {"H2": "no_face"}
    assert rows_holding(port.store, jpeg[-256:]) == []
    assert FaceStore(port.store).models() == {}


def test_no_template_is_enrolled_by_hand_where_faces_are_off(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(
        f"""
[terminal]
id = "gate-01"
site = "demo"
state_dir = "{tmp_path}"
[reader]
driver = "sim"
[door]
id = "east-gate"
[gate]
driver = "sim"
"""
    )
    picture = tmp_path / "h1.jpg"
    picture.write_bytes(encode_jpeg(np.full((480, 600, 3), 200, np.uint8)))
    assert run(["faces", "enrol", "--config", str(config), "--holder", "H1", str(picture)]) == (
        EXIT_USAGE
    )
    assert not (tmp_path / "terminal.db").exists()
