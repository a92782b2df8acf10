"""PIN hashes keyed with a secret of the key store: the database alone allows no offline search.

HQ sends ``pbkdf2_sha256$…``; a terminal with a key store keeps ``pbkdf2_sha256_keyed$…``, whose
last field is an HMAC of the PBKDF2 digest under a key only the key store can produce
(docs/privacy.md). A till computes PBKDF2(pin, salt), then the same HMAC, and compares.
"""

import base64
import hashlib
import pickle
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.cardemu.sam import EmulatedSam
from drivers.interfaces import AmountEntered, PinEntered, Screen
from drivers.keystore import KeyStore, PsamKeyStore, SoftwareKeyStore, derive_pin_key
from drivers.sim import SimCardReader
from models.pin import PinKey, check_pin, hash_pin, verify_pin
from sync.changes import parse_batch
from terminal import app as app_module
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.devices import SimControls
from terminal.store import Store
from terminal.store.keeping import DROPPED_PINS, Keeping, seal_pins
from terminal.store.sync_port import StoreSyncPort
from tests.factories import InProcessSam, at, presented
from tests.fixtures import DEMO_PIN, SHOP, card_number, seed
from tests.loops import settle
from tests.sync.messages import TID, batch, change, holder

MASTER = bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C")
OTHER = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
SALT = b"saltsalt"
NOON = at(2026, 11, 23, "12:00")


def digest_of(stored: str) -> bytes:
    return base64.b64decode(stored.rsplit("$", 1)[1])


def pin_key(master: bytes = MASTER) -> PinKey:
    return PinKey(derive_pin_key(SoftwareKeyStore({1: master}), 1))


# -- the keyed form --------------------------------------------------------------------------


def test_a_sealed_hash_verifies_with_its_key_only() -> None:
    plain = hash_pin("123456", SALT, iterations=1000)
    key = pin_key()
    sealed = key.seal(plain)
    assert sealed is not None and sealed.startswith("pbkdf2_sha256_keyed$1000$")
    # Salt and rounds stay (the till needs them); the PBKDF2 digest itself is gone.
    assert sealed.split("$")[1:3] == plain.split("$")[1:3]
    assert digest_of(plain) not in base64.b64decode(sealed.rsplit("$", 1)[1])
    assert check_pin("123456", sealed, key) is True
    assert check_pin("123457", sealed, key) is False
    assert check_pin("123456", sealed, pin_key(OTHER)) is False
    assert check_pin("123456", plain, key) is True  # not yet sealed: still checks


def test_a_sealed_hash_without_its_key_cannot_be_checked_here() -> None:
    sealed = pin_key().seal(hash_pin("123456", SALT, iterations=1000))
    # Not "wrong": the key store is not answering, which must not count against the holder.
    assert check_pin("123456", sealed, None) is None
    assert verify_pin("123456", sealed) is False
    assert check_pin("123456", None, None) is False
    assert pin_key().seal("not a hash") is None


def test_the_key_never_shows() -> None:
    raw = derive_pin_key(SoftwareKeyStore({1: MASTER}), 1)
    key = PinKey(raw)
    assert raw.hex() not in repr(key) and raw.hex().upper() not in str(key)
    assert key.check in repr(key) and len(key.check) == 16
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_an_entered_pin_does_not_show_in_the_event() -> None:
    assert "135790" not in repr(PinEntered("135790")) and PinEntered("135790").pin == "135790"


def test_the_psam_and_the_key_file_derive_the_same_key() -> None:
    software = derive_pin_key(SoftwareKeyStore({1: MASTER, 2: OTHER}), 1)
    psam = derive_pin_key(PsamKeyStore(InProcessSam(EmulatedSam({1: MASTER}))), 1)
    assert software == psam and len(software) == 16
    assert derive_pin_key(SoftwareKeyStore({1: MASTER, 2: OTHER}), 2) != software


# -- the store ---------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(tmp_path / "terminal.db")
    yield opened
    opened.close()


def stored_pin(store: Store, holder_id: str) -> str | None:
    with store.read() as conn:
        row = conn.execute("SELECT pin_hash FROM holders WHERE id = ?", (holder_id,)).fetchone()
    return None if row is None else row[0]


def apply(port: StoreSyncPort, changes: list[dict[str, Any]]) -> None:
    parsed = parse_batch(batch(changes))
    port.apply_batch(parsed.first, parsed.last, parsed.changes)


def test_pin_hashes_from_hq_are_stored_sealed(store: Store) -> None:
    key = pin_key()
    plain = hash_pin("246810", SALT, iterations=1000)
    port = StoreSyncPort(store, TID, keeping=Keeping(pin_key=lambda: key))
    apply(port, [change(1, "holder.upsert", holder=holder("H1", pin_hash=plain))])
    sealed = stored_pin(store, "H1")
    assert sealed is not None and sealed.startswith("pbkdf2_sha256_keyed$")
    assert check_pin("246810", sealed, key) is True
    assert plain not in Path(store.path).read_bytes().decode("latin-1")


def test_without_a_key_yet_the_hash_waits_and_is_sealed_once_the_key_comes(store: Store) -> None:
    plain = hash_pin("246810", SALT, iterations=1000)
    current: list[PinKey] = []
    keeping = Keeping(pin_key=lambda: current[0] if current else None)
    port = StoreSyncPort(store, TID, keeping=keeping)
    apply(port, [change(1, "holder.upsert", holder=holder("H1", pin_hash=plain))])
    assert stored_pin(store, "H1") == plain  # the PSAM has not answered yet
    key = pin_key()
    assert seal_pins(store, key, adopt=current.append) == 1
    assert current == [key]
    assert check_pin("246810", stored_pin(store, "H1"), key) is True
    assert seal_pins(store, key) == 0  # nothing left to seal


def test_a_changed_key_drops_what_it_cannot_check_and_asks_for_a_snapshot(store: Store) -> None:
    old = pin_key()
    port = StoreSyncPort(store, TID, keeping=Keeping(pin_key=lambda: old))
    apply(port, [change(1, "holder.upsert", holder=holder("H1", pin_hash=hash_pin("1234", SALT)))])
    seal_pins(store, old)
    assert not port.snapshot_wanted()
    new = pin_key(OTHER)  # another PSAM, or privacy.pin_key_id changed
    seal_pins(store, new)
    assert stored_pin(store, "H1") is None
    assert store.state(DROPPED_PINS) is not None
    assert StoreSyncPort(store, TID, keeping=Keeping(pin_key=lambda: new)).snapshot_wanted()


# -- the daemon ------------------------------------------------------------------------------


class KeyedSimReader(SimCardReader):
    """A simulated reader with a key store, as a PC/SC reader in cpu mode has."""

    key_store: KeyStore = SoftwareKeyStore({1: MASTER})


def shop_config(tmp_path: Path, reader: dict[str, Any]) -> config_module.Config:
    return config_module.parse(
        {
            "terminal": {"id": "shop-01", "site": "demo", "state_dir": str(tmp_path / "state")},
            "diag": {"socket": str(tmp_path / "diag.sock")},
            "reader": reader,
            "cards": {"issuers": ["5943484E00000001"]},
            "pos": {"merchant": SHOP, "service": "shop"},
            "keypad": {"driver": "sim"},
            "display": {"driver": "sim"},
        }
    )


def pcsc(tmp_path: Path) -> dict[str, Any]:
    key_file = tmp_path / "keys.toml"
    key_file.write_text(f'[master_keys]\n1 = "{MASTER.hex()}"\n')
    key_file.chmod(0o600)
    return {
        "driver": "pcsc",
        "reader_pattern": "ACS",
        "key_store": {"type": "software", "key_file": f"file:{key_file}"},
    }


@pytest.fixture
def keyed_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    state = tmp_path / "state"
    seeded = Store.open(state / "terminal.db")
    seed(seeded)  # the demo site: PBKDF2 hashes as an older version kept them
    seeded.close()
    monkeypatch.setitem(app_module.READERS, "pcsc", lambda section, sim: KeyedSimReader(sim.reader))
    app = App(
        shop_config(tmp_path, pcsc(tmp_path)),
        clock=SetClock(NOON),
        sim=SimControls(),
        threaded=False,
    )
    yield app
    app.close()


def pay_with_pin(app: App, pin: str) -> dict[str, Any]:
    sim = app.sim

    def on_screen(screen: Screen) -> None:
        if screen.headline.startswith("请输入密码"):
            sim.keypad.press(PinEntered(pin))

    sim.display.listeners.append(on_screen)
    clock = app.clock
    assert isinstance(clock, SetClock)
    clock.advance(timedelta(seconds=60))
    sim.keypad.press(AmountEntered(12_000))  # gold: a PIN above 100.00
    settle(app.loop, clock)
    sim.reader.present(presented(card_number(1)))
    settle(app.loop, clock)
    sim.reader.remove()
    settle(app.loop, clock)
    sim.display.listeners.remove(on_screen)
    return app.store.records()[-1]


def test_existing_hashes_are_sealed_at_start_and_the_till_checks_them(keyed_app: App) -> None:
    sealed = stored_pin(keyed_app.store, "H001")
    assert sealed is not None and sealed.startswith("pbkdf2_sha256_keyed$")
    assert pay_with_pin(keyed_app, DEMO_PIN)["decision"] == "allow"
    wrong = pay_with_pin(keyed_app, "000000")
    assert wrong["reason"] == "pin_wrong"
    with keyed_app.store.read() as conn:
        assert conn.execute("SELECT failures FROM pin_state").fetchall() == [(1,)]


def test_a_pin_the_key_store_cannot_check_is_not_counted_as_wrong(keyed_app: App) -> None:
    keyed_app.pin_keys.key = None  # as after a start with the PSAM not answering yet
    record = pay_with_pin(keyed_app, DEMO_PIN)
    assert (record["decision"], record["reason"]) == ("deny", "cancelled_by_user")
    with keyed_app.store.read() as conn:
        assert conn.execute("SELECT count(*) FROM pin_state WHERE failures > 0").fetchone() == (0,)


def test_without_a_key_store_the_hash_stays_plain_and_the_config_says_so(tmp_path: Path) -> None:
    uid = shop_config(tmp_path, {"driver": "pcsc", "reader_pattern": "ACS", "mode": "uid"})
    assert any("PIN" in w and "key store" in w for w in uid.warnings())
    sim = shop_config(tmp_path, {"driver": "sim"})
    assert any("PIN" in w and "key store" in w for w in sim.warnings())
    keyed = shop_config(tmp_path, pcsc(tmp_path))
    assert not any("PIN" in w for w in keyed.warnings())
    plain = hash_pin("246810", SALT, iterations=1000)
    state = tmp_path / "state"
    store = Store.open(state / "terminal.db")
    apply(
        StoreSyncPort(store, TID), [change(1, "holder.upsert", holder=holder("H1", pin_hash=plain))]
    )
    assert stored_pin(store, "H1") == plain
    store.close()


def test_pin_key_id_needs_a_key_store(tmp_path: Path) -> None:
    with pytest.raises(config_module.ConfigError, match=r"privacy\.pin_key_id"):
        config_module.parse(
            {
                "terminal": {"id": "shop-01", "site": "demo"},
                "reader": {"driver": "sim"},
                "pos": {"merchant": SHOP, "service": "shop"},
                "keypad": {"driver": "sim"},
                "display": {"driver": "sim"},
                "privacy": {"pin_key_id": 7},
            }
        )


def test_pbkdf2_digest_is_what_hq_sends() -> None:
    # The keyed step starts from HQ's digest, so the iterations HQ chose still apply.
    stored = hash_pin("123456", SALT, iterations=1000)
    assert digest_of(stored) == hashlib.pbkdf2_hmac("sha256", b"123456", SALT, 1000)
