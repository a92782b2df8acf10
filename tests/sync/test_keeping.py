"""What a terminal keeps of what HQ sends: minimised by role and configuration (docs/privacy.md).

Faces off: no template or photo lands, from a batch or a snapshot, and what was there goes at
start; the drop is recorded so that turning faces on asks HQ for a snapshot. Names are kept as
the display shows them unless the site opts in; units, departments, ID and phone numbers are
never kept; door terminals keep no PIN hash.
"""

import base64
import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from models.matcher import Template
from sync.changes import parse_batch, parse_change
from sync.port import BatchOutcome
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.devices import SimControls
from terminal.diag import facts, redact
from terminal.store import Store
from terminal.store.faces import FaceStore
from terminal.store.keeping import (
    DROPPED_FACES,
    DROPPED_NAMES,
    DROPPED_PINS,
    Keeping,
    enforce,
)
from terminal.store.sync_port import StoreSyncPort
from tests.factories import at, sim_door_config
from tests.sync.messages import TID, batch, change, holder

TEMPLATE = Template.of("dlib-resnet-v1", [0.6, 0.8, 0.0]).to_bytes()
PHOTO = b"\xff\xd8\xff\xe0" + b"registration photo of H2 " * 8
PIN = "pbkdf2_sha256$1000$c2FsdHNhbHQ=$9iC6G1fVnOlvoHGD3vIYkqEy6uE1J5WIYi2Z7pEJBqs="


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "terminal.db")
    yield opened
    opened.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def face_changes(first: int) -> list[dict[str, Any]]:
    return [
        change(
            first, "face.upsert", holder_id="H1", model="dlib-resnet-v1", template=b64(TEMPLATE)
        ),
        change(first + 1, "face.upsert", holder_id="H2", photo=b64(PHOTO)),
    ]


def site(first: int = 1) -> list[dict[str, Any]]:
    return [
        change(first, "holder.upsert", holder=holder("H1", name="张伟", pin_hash=PIN)),
        change(first + 1, "holder.upsert", holder=holder("H2", name="欧阳娜娜")),
        *face_changes(first + 2),
    ]


def apply(port: StoreSyncPort, changes: list[dict[str, Any]]) -> BatchOutcome:
    parsed = parse_batch(batch(changes))
    return port.apply_batch(parsed.first, parsed.last, parsed.changes)


def snapshot(port: StoreSyncPort, changes: Iterable[dict[str, Any]], seq: int) -> None:
    stage = port.begin_snapshot(f"s{seq}", seq)
    stage.add([parse_change(c) for c in changes])
    stage.commit(seq=seq, snap_id=f"s{seq}", tx_through=0)


def count(store: Store, sql: str) -> int:
    with store.read() as conn:
        return int(conn.execute(sql).fetchone()[0])


def face_rows(store: Store) -> int:
    return count(store, "SELECT count(*) FROM faces") + count(
        store, "SELECT count(*) FROM face_templates"
    )


def everything(store: Store) -> str:
    """Every value of every row, as one text to search."""
    parts: list[str] = []
    with store.read() as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(value.decode("latin-1"))
                    elif value is not None:
                        parts.append(str(value))
    return "\n".join(parts)


# -- faces off -------------------------------------------------------------------------------


def test_faces_off_drops_face_upserts_of_a_batch_and_says_so_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    port = StoreSyncPort(store, TID, keeping=Keeping(faces=False))
    with caplog.at_level(logging.INFO, logger="terminal.store"):
        assert apply(port, site()) is BatchOutcome.APPLIED
    assert face_rows(store) == 0
    assert port.marks().change_seq == 4  # the seqs still count: the log moves past them
    said = [r.getMessage() for r in caplog.records]
    dropped = [m for m in said if "face" in m and "dropped" in m]
    assert len(dropped) == 1 and "dropped 2 face" in dropped[0]
    assert store.state(DROPPED_FACES) is not None
    assert PHOTO.decode("latin-1") not in everything(store)


def test_faces_off_drops_the_faces_of_a_snapshot(store: Store) -> None:
    port = StoreSyncPort(store, TID, keeping=Keeping(faces=False))
    snapshot(port, site(), 10)
    assert face_rows(store) == 0
    assert count(store, "SELECT count(*) FROM holders") == 2
    assert store.state(DROPPED_FACES) is not None


def test_face_data_already_there_is_purged_at_start(store: Store) -> None:
    apply(StoreSyncPort(store, TID), site())  # while faces were on
    with store.write() as conn:  # and one enrolled on the device (ykt faces enrol)
        conn.execute(
            "INSERT INTO face_templates (holder_id, model, template, source, updated) "
            "VALUES ('H9', 'dlib-resnet-v1', ?, 'device', '2026-11-23T08:00:00')",
            (TEMPLATE,),
        )
    assert face_rows(store) == 4
    done = enforce(store, Keeping(faces=False))
    assert done["faces"] == 4
    assert face_rows(store) == 0
    assert store.state(DROPPED_FACES) is not None
    assert enforce(store, Keeping(faces=False))["faces"] == 0  # the second start finds nothing


def test_turning_faces_on_wants_a_snapshot_which_brings_them_back(store: Store) -> None:
    off = StoreSyncPort(store, TID, keeping=Keeping(faces=False))
    apply(off, site())
    assert not off.snapshot_wanted()  # faces are off: nothing missing that would be kept
    on = StoreSyncPort(store, TID, keeping=Keeping(faces=True))
    assert on.snapshot_wanted()
    apply(on, [change(5, "holder.upsert", holder=holder("H3"))])
    assert on.snapshot_wanted()  # a batch does not bring back what was dropped before it
    snapshot(on, site(), 20)
    assert not on.snapshot_wanted()
    assert store.state(DROPPED_FACES) is None
    assert count(store, "SELECT count(*) FROM face_templates") == 1
    assert count(store, "SELECT count(*) FROM faces WHERE photo IS NOT NULL") == 1


def test_a_face_delete_still_applies_with_faces_off(store: Store) -> None:
    apply(StoreSyncPort(store, TID), site())
    off = StoreSyncPort(store, TID, keeping=Keeping(faces=False))
    assert apply(off, [change(5, "face.delete", holder_id="H1")]) is BatchOutcome.APPLIED
    assert count(store, "SELECT count(*) FROM face_templates WHERE holder_id = 'H1'") == 0


# -- names, units, ID and phone numbers ------------------------------------------------------


def names(store: Store) -> dict[str, str]:
    with store.read() as conn:
        return dict(conn.execute("SELECT id, name FROM holders").fetchall())


def test_names_are_kept_as_the_display_shows_them(store: Store) -> None:
    port = StoreSyncPort(store, TID)  # the default: privacy.full_names = false
    apply(port, site())
    snapshot(port, [change(30, "holder.upsert", holder=holder("H5", name="Tony Blair"))], 30)
    assert names(store) == {"H5": "T*********"}
    apply(port, [change(31, "holder.upsert", holder=holder("H1", name="张伟"))])
    assert names(store)["H1"] == "张*"
    assert "张伟" not in everything(store)


def test_a_site_may_keep_full_names(store: Store) -> None:
    port = StoreSyncPort(store, TID, keeping=Keeping(full_names=True))
    apply(port, site())
    assert names(store) == {"H1": "张伟", "H2": "欧阳娜娜"}


def test_full_names_already_there_are_masked_at_start_and_come_back_by_snapshot(
    store: Store,
) -> None:
    apply(StoreSyncPort(store, TID, keeping=Keeping(full_names=True)), site())
    assert enforce(store, Keeping())["names"] == 2
    assert names(store) == {"H1": "张*", "H2": "欧***"}
    assert store.state(DROPPED_NAMES) is not None
    full = StoreSyncPort(store, TID, keeping=Keeping(full_names=True))
    assert full.snapshot_wanted()
    snapshot(full, site(), 40)
    assert names(store)["H1"] == "张伟" and not full.snapshot_wanted()


def test_diag_still_masks_a_full_name_that_turns_up_in_a_log(store: Store) -> None:
    apply(StoreSyncPort(store, TID), site())  # the store knows only 张* and 欧***
    line = "tap by 张伟 at the east gate, then 欧阳娜娜"
    with facts.Database(store.path) as db:
        found = db.known_names(redact.name_candidates(line))
    scrubbed = redact.scrub_names(line, found)
    assert "张伟" not in scrubbed and "欧阳娜娜" not in scrubbed
    assert scrubbed.startswith("tap by 张* at the east gate")


def test_units_departments_id_and_phone_numbers_are_never_kept(store: Store) -> None:
    extra = {
        "unit": "市政府",
        "dept": "办公厅",
        "id_number": "11010519491231002X",
        "id_last4": "002X",
        "id_hash": "9f86d081884c7d659a2feaa0c55ad015",
        "phone": "13800138000",
        "phone_masked": "138****8000",
    }
    port = StoreSyncPort(store, TID, keeping=Keeping(full_names=True))
    apply(port, [change(1, "holder.upsert", holder=holder("H1", **extra))])
    snapshot(port, [change(2, "holder.upsert", holder=holder("H2", **extra))], 2)
    text = everything(store)
    for value in extra.values():
        assert value not in text
    with store.read() as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(holders)")}
    assert not columns & {"unit", "dept", "id_number_hash", "id_number_last4"}


# -- PIN hashes by role --------------------------------------------------------------------------


def pins(store: Store) -> list[Any]:
    with store.read() as conn:
        return [r[0] for r in conn.execute("SELECT pin_hash FROM holders ORDER BY id")]


def test_a_door_terminal_keeps_no_pin_hash(store: Store) -> None:
    door = StoreSyncPort(store, TID, keeping=Keeping(pins=False))
    apply(door, site())
    snapshot(door, site(10), 20)
    assert pins(store) == [None, None]
    assert store.state(DROPPED_PINS) is not None
    assert not door.snapshot_wanted()
    assert StoreSyncPort(store, TID, keeping=Keeping(pins=True)).snapshot_wanted()


def test_pin_hashes_a_door_held_from_before_go_at_start(store: Store) -> None:
    apply(StoreSyncPort(store, TID), site())
    assert pins(store) == [PIN, None]
    assert enforce(store, Keeping(pins=False))["pins"] == 1
    assert pins(store) == [None, None]


def test_sealed_hashes_go_at_start_when_there_is_no_key_store_any_more(store: Store) -> None:
    with store.write() as conn:
        conn.execute(
            "INSERT INTO holders (id, name, card_class, pin_hash) "
            "VALUES ('H1', '张*', 'red', 'pbkdf2_sha256_keyed$1000$c2FsdHNhbHQ=$AAAA')"
        )
    assert enforce(store, Keeping(pin_key=None))["pins"] == 1
    assert pins(store) == [None]
    assert StoreSyncPort(store, TID).snapshot_wanted()


def test_a_terminal_with_faces_off_purges_them_as_it_starts(tmp_path: Path) -> None:
    noon = at(2026, 11, 23, "12:00")
    state = tmp_path / "state"
    store = Store.open(state / "terminal.db")
    apply(StoreSyncPort(store, TID), site())  # kept while faces were on
    still = FaceStore(store).add_still(
        b"\xff\xd8evidence", kind="face_mismatch", at=noon, retention=timedelta(days=30)
    )
    store.close()
    config = config_module.parse(sim_door_config(state, tmp_path / "diag.sock"))
    app = App(config, clock=SetClock(noon), sim=SimControls(), threaded=False)
    try:
        assert face_rows(app.store) == 0
        assert PHOTO.decode("latin-1") not in everything(app.store)
        assert app.store.state(DROPPED_FACES) is not None
        # Evidence of a security event keeps its own retention (docs/privacy.md).
        assert FaceStore(app.store).still(still) is not None
        assert pins(app.store) == [None, None]  # a door asks nobody for a PIN
        assert names(app.store) == {"H1": "张*", "H2": "欧***"}
    finally:
        app.close()
