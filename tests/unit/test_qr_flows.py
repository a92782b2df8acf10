"""Codes at the door and the till, through the tap loop and a real SQLite store: decided like a
tap, journalled as ``qr``, and spent in the same transaction as the record that accepted them."""

import json
from datetime import timedelta
from pathlib import Path

import pytest

from drivers.interfaces import AmountEntered, PinEntered
from drivers.qr.interface import QrPresented, QrRemoved
from drivers.qr.sim import SimQrReader
from drivers.sim import SimDisplay, SimKeypadControl, SimReaderControl
from models.reasons import Reason
from models.wallet import Service
from terminal.clock import SetClock
from terminal.flows.door import DoorSettings, FlowNotice, Notice
from terminal.flows.pos import PosSettings
from terminal.loop import TapLoop
from terminal.store import Store
from tests.factories import at
from tests.fixtures import DEMO_PIN, DOOR, SHOP, seed
from tests.loops import door_loop, pos_loop, settle
from tests.qr_tokens import PhoneKey

MONDAY_9 = at(2026, 11, 23, "09:00")
NOW = int(MONDAY_9.timestamp())
LOST_CARD_HOLDER = PhoneKey("H005", "q-lost", bytes([5]) * 32)  # card 5 was reported lost
LEADER = PhoneKey("H001", "q-lead", bytes([1]) * 32)


def give_keys(store: Store, *phones: PhoneKey) -> None:
    """What an applied holder.upsert leaves in the holders table (its own tests: test_qr_store)."""
    with store.write() as conn:
        for phone in phones:
            conn.execute(
                "UPDATE holders SET qr_keys = ? WHERE id = ?",
                (json.dumps([{"k": phone.key_id, "pub": phone.pub}]), phone.holder_id),
            )


@pytest.fixture
def site(store: Store) -> Store:
    seed(store)
    give_keys(store, LOST_CARD_HOLDER, LEADER)
    return store


def door(store: Store, clock: SetClock) -> tuple[TapLoop, list[object]]:
    loop = door_loop(store, DoorSettings(DOOR, "in", 0.05), clock)
    told: list[object] = []
    loop.flow.listeners.append(told.append)
    return loop, told


def show(loop: TapLoop, clock: SetClock, text: str, *, remove: bool = True) -> None:
    loop.post(QrPresented(text, "sim"))
    if remove:
        loop.post(QrRemoved())
    settle(loop, clock)


def door_records(store: Store) -> list[dict[str, object]]:
    return [r for r in store.records() if r["kind"] == "door"]


def nonces(store: Store) -> list[tuple[str, str, int]]:
    with store.read() as conn:
        return list(conn.execute("SELECT holder_id, nonce, keep_until FROM qr_nonces"))


def test_a_holder_whose_card_was_lost_walks_in_with_the_phone_once(site: Store) -> None:
    clock = SetClock(MONDAY_9)
    loop, _ = door(site, clock)
    code = LOST_CARD_HOLDER.token(NOW - 2, NOW + 28)
    show(loop, clock, code)
    first = door_records(site)[-1]
    assert (first["decision"], first["reason"], first["credential"]) == ("allow", "allowed", "qr")
    assert (first["holder_id"], first.get("card")) == ("H005", None)  # the lost card passed not
    assert [r["kind"] for r in site.records()][-1] == "passage"
    assert nonces(site) == [("H005", "AQEBAQEBAQEBAQEB", NOW + 33)]
    clock.advance(timedelta(seconds=5))
    show(loop, clock, code)  # taken away and shown again: a replay
    again = door_records(site)[-1]
    assert (again["decision"], again["reason"], again["credential"]) == (
        "deny",
        "qr_replayed",
        "qr",
    )
    assert again["holder_id"] == "H005"
    with site.read() as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0  # no alarm


def test_a_code_held_in_view_is_one_presentation(site: Store) -> None:
    clock = SetClock(MONDAY_9)
    loop, told = door(site, clock)
    code = LEADER.token(NOW, NOW + 30)
    show(loop, clock, code, remove=False)
    show(loop, clock, code, remove=False)  # the same code still in view: not decided again
    assert len(door_records(site)) == 1
    assert any(isinstance(m, FlowNotice) and m.notice is Notice.HELD for m in told)


def test_the_replay_cache_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "terminal.db"
    store = Store.open(path)
    seed(store)
    give_keys(store, LEADER)
    clock = SetClock(MONDAY_9)
    code = LEADER.token(NOW, NOW + 30)
    show(door(store, clock)[0], clock, code)
    store.close()
    reopened = Store.open(path)
    try:
        show(door(reopened, clock)[0], clock, code)
        assert door_records(reopened)[-1]["reason"] == "qr_replayed"
    finally:
        reopened.close()


def test_expired_forged_and_revoked_codes_are_refused_with_their_reasons(site: Store) -> None:
    clock = SetClock(MONDAY_9)
    loop, _ = door(site, clock)
    show(loop, clock, LEADER.token(NOW - 100, NOW - 40))
    forged = PhoneKey("H001", "q-lead", bytes([9]) * 32)
    show(loop, clock, forged.token(NOW, NOW + 30, nonce=b"\x02" * 12))
    give_keys(site, PhoneKey("H001", "q-new", bytes([2]) * 32))  # HQ no longer lists q-lead
    show(loop, clock, LEADER.token(NOW, NOW + 30, nonce=b"\x03" * 12))
    show(loop, clock, "https://example.com/not-ours")
    got = [(r["reason"], r.get("holder_id")) for r in door_records(site)]
    assert got == [
        ("qr_expired", "H001"),
        ("qr_invalid", None),
        ("qr_unknown_key", None),
        ("qr_invalid", None),
    ]
    assert nonces(site) == []


def test_the_nonce_is_spent_only_with_the_record_that_accepted_it(site: Store) -> None:
    clock = SetClock(MONDAY_9)
    loop, told = door(site, clock)
    with site.write() as conn:  # the journal cannot be written (as on a full disk)
        conn.execute(
            "CREATE TRIGGER no_journal BEFORE INSERT ON journal "
            "BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
    show(loop, clock, LEADER.token(NOW, NOW + 30))
    assert any(isinstance(m, FlowNotice) and m.notice is Notice.STORE_FAILED for m in told)
    assert nonces(site) == []  # not recorded, not spent: the holder may show it again
    with site.write() as conn:
        conn.execute("DROP TRIGGER no_journal")
    show(loop, clock, LEADER.token(NOW, NOW + 30))
    assert door_records(site)[-1]["reason"] == "allowed"
    assert len(nonces(site)) == 1


def test_nonces_of_codes_long_expired_are_dropped(site: Store) -> None:
    clock = SetClock(MONDAY_9)
    loop, _ = door(site, clock)
    show(loop, clock, LEADER.token(NOW, NOW + 30, nonce=b"\x04" * 12))
    clock.advance(timedelta(minutes=5))
    later = NOW + 300
    show(loop, clock, LEADER.token(later, later + 30, nonce=b"\x05" * 12))
    assert [n for _, n, _ in nonces(site)] == ["BQUFBQUFBQUFBQUF"]


def test_the_loop_reads_codes_from_the_qr_reader_beside_the_card_reader(site: Store) -> None:
    clock = SetClock(MONDAY_9)
    loop, _ = door(site, clock)
    reader = SimQrReader()
    loop.qr_reader = reader
    reader.show(LOST_CARD_HOLDER.token(NOW, NOW + 30))
    reader.hide()
    loop.run_until_idle()
    settle(loop, clock)
    assert door_records(site)[-1]["credential"] == "qr"


def test_a_code_pays_at_the_till_and_asks_for_the_pin_above_the_free_limit(site: Store) -> None:
    clock = SetClock(MONDAY_9)
    keys, display = SimKeypadControl(), SimDisplay()
    loop = pos_loop(
        site,
        PosSettings(SHOP, Service.SHOP),
        clock,
        reader=SimReaderControl(),
        keys=keys,
        display=display,
    )
    loop.post(AmountEntered(1_200))
    show(loop, clock, LEADER.token(NOW, NOW + 30, nonce=b"\x06" * 12))
    small = site.records()[-1]
    assert (small["decision"], small["credential"], small["amount"]) == ("allow", "qr", 1_200)
    clock.advance(timedelta(seconds=20))  # past the duplicate-tap window
    later = NOW + 20
    loop.post(AmountEntered(12_000))  # above the gold class's 100-yuan password-free limit
    loop.post(QrPresented(LEADER.token(later, later + 30, nonce=b"\x07" * 12), "sim"))
    for _ in range(20):
        loop.turn(0)
    assert display.screens[-1].headline == "请输入密码"
    assert len(site.records()) == 1  # a prompt is not a record
    loop.post(PinEntered(DEMO_PIN))
    settle(loop, clock)
    large = site.records()[-1]
    assert (large["decision"], large["credential"], large["amount"]) == ("allow", "qr", 12_000)
    assert len(nonces(site)) == 2
    assert site.records()[-1]["reason"] == str(Reason.ALLOWED)
