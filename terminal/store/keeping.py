"""What this terminal keeps of the personal data HQ sends, by role and configuration.

docs/privacy.md has the table. Data is cut down as it arrives (change batches and snapshots, see
:mod:`terminal.store.sync_apply` and :mod:`terminal.store.sync_port`) and again at start
(:func:`enforce`), for what an earlier configuration or version kept. Whatever is dropped is
recorded in a state row: HQ sends a holder's face, name or PIN once, so a terminal whose new
configuration keeps it again can only get it back from a snapshot (:func:`snapshot_wanted`).
"""

import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from models.pin import PinKey, mask_name
from terminal.store.store import Store

logger = logging.getLogger(__name__)

DROPPED_FACES = "dropped_faces"
DROPPED_NAMES = "dropped_names"
DROPPED_PINS = "dropped_pins"
PIN_KEY_CHECK = "pin_key_check"  # the fingerprint of the key the stored PIN hashes are sealed with
# GLOB, not LIKE: LIKE's "_" matches any character and would take one form for the other.
_PLAIN_PIN = "pin_hash GLOB 'pbkdf2_sha256$*'"
_SEALED_PIN = "pin_hash GLOB 'pbkdf2_sha256_keyed$*'"


@dataclass(frozen=True, slots=True)
class Keeping:
    """What to keep. ``pin_key`` is None without a key store (PIN hashes stay as HQ sent them);
    with one it gives the key once the key store has answered, None before."""

    faces: bool = True  # [faces] enabled
    full_names: bool = False  # [privacy] full_names; otherwise names as the display shows them
    pins: bool = True  # POS terminals; a door never asks for a PIN
    pin_key: Callable[[], PinKey | None] | None = None

    def kept(self) -> tuple[str, ...]:
        """The markers of dropped data this configuration would keep."""
        return tuple(
            marker
            for marker, keep in (
                (DROPPED_FACES, self.faces),
                (DROPPED_NAMES, self.full_names),
                (DROPPED_PINS, self.pins),
            )
            if keep
        )


def _mark(conn: sqlite3.Connection, marker: str) -> None:
    conn.execute(
        "INSERT INTO sync_state (key, value) VALUES (?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')) "
        "ON CONFLICT (key) DO NOTHING",
        (marker,),
    )


def _seal_plain(conn: sqlite3.Connection, key: PinKey) -> int:
    rows = conn.execute(f"SELECT id, pin_hash FROM holders WHERE {_PLAIN_PIN}").fetchall()
    conn.executemany(
        "UPDATE holders SET pin_hash = ? WHERE id = ?", [(key.seal(pin), hid) for hid, pin in rows]
    )
    return len(rows)


class Cut:
    """Cuts one batch's or one snapshot's changes down to what is kept, counting what went."""

    def __init__(self, keeping: Keeping) -> None:
        self.keeping = keeping
        self.key = keeping.pin_key() if keeping.pin_key is not None else None
        self.faces = self.names = self.pins = 0

    def name(self, name: str) -> str:
        if self.keeping.full_names:
            return name
        masked = mask_name(name)
        self.names += masked != name
        return masked

    def pin(self, stored: str | None) -> str | None:
        if stored is None:
            return None
        if not self.keeping.pins:
            self.pins += 1
            return None
        # No key yet (the PSAM has not answered since start): kept as sent, sealed when it does.
        return stored if self.key is None else self.key.seal(stored)

    def face(self) -> bool:
        """Whether a ``face.upsert`` is kept."""
        if not self.keeping.faces:
            self.faces += 1
        return self.keeping.faces

    def record(self, conn: sqlite3.Connection, *, snapshot: bool) -> None:
        """In the transaction that wrote the changes: mark what was dropped; after a snapshot,
        forget the marks of what it brought back (it holds everything HQ has)."""
        for marker, count in (
            (DROPPED_FACES, self.faces),
            (DROPPED_NAMES, self.names),
            (DROPPED_PINS, self.pins),
        ):
            if count:
                _mark(conn, marker)
        if snapshot:
            conn.executemany(
                "DELETE FROM sync_state WHERE key = ?", [(m,) for m in self.keeping.kept()]
            )
            key = self.keeping.pin_key() if self.keeping.pin_key is not None else None
            if key is not None and self.keeping.pins:
                _seal_plain(conn, key)  # staged before the key store first answered
        if self.faces:
            logger.info(
                "dropped %d face records from HQ (%s): faces are off on this terminal",
                self.faces,
                "snapshot" if snapshot else "change batch",
            )


def snapshot_wanted(store: Store, keeping: Keeping) -> bool:
    """Data dropped under an earlier configuration is kept under this one."""
    kept = keeping.kept()
    if not kept:
        return False
    with store.read() as conn:
        found = conn.execute(
            f"SELECT 1 FROM sync_state WHERE key IN ({', '.join('?' * len(kept))}) LIMIT 1", kept
        ).fetchone()
    return found is not None


def enforce(store: Store, keeping: Keeping) -> dict[str, int]:
    """At start, in one transaction: remove what this configuration does not keep (face data,
    full names, PIN hashes at a door, sealed hashes nothing here can check); returns counts."""
    done = {"faces": 0, "names": 0, "pins": 0}
    with store.write() as conn:
        if not keeping.faces:
            done["faces"] = sum(
                int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("faces", "face_templates")
            )
            if done["faces"]:
                conn.execute("DELETE FROM faces")
                conn.execute("DELETE FROM face_templates")
                _mark(conn, DROPPED_FACES)
        if not keeping.full_names:
            rows = [
                (mask_name(name), hid)
                for hid, name in conn.execute("SELECT id, name FROM holders")
                if mask_name(name) != name
            ]
            conn.executemany("UPDATE holders SET name = ? WHERE id = ?", rows)
            done["names"] = len(rows)
            if rows:
                _mark(conn, DROPPED_NAMES)
        if not keeping.pins:
            done["pins"] = conn.execute(
                "UPDATE holders SET pin_hash = NULL WHERE pin_hash IS NOT NULL"
            ).rowcount
        elif keeping.pin_key is None:
            done["pins"] = conn.execute(
                f"UPDATE holders SET pin_hash = NULL WHERE {_SEALED_PIN}"
            ).rowcount
            conn.execute("DELETE FROM sync_state WHERE key = ?", (PIN_KEY_CHECK,))
        if done["pins"]:
            _mark(conn, DROPPED_PINS)
    if any(done.values()):
        logger.info(
            "removed what this terminal does not keep (docs/privacy.md): face records %d, "
            "full names %d, PIN hashes %d",
            done["faces"],
            done["names"],
            done["pins"],
        )
    if snapshot_wanted(store, keeping):
        logger.info(
            "data dropped under an earlier configuration (faces, full names or PIN hashes) is "
            "kept now: a snapshot from HQ brings it back"
        )
    return done


def seal_pins(store: Store, key: PinKey, adopt: Callable[[PinKey], None] | None = None) -> int:
    """Seal every PIN hash still kept as HQ sent it; returns how many. Hashes sealed under
    another key cannot be checked here any more: they go, and a snapshot brings them again.

    ``adopt`` is called inside the transaction, so a change batch (which takes the key in its
    own transaction) either comes before and is sealed here, or after and seals itself."""
    with store.write() as conn:
        row = conn.execute("SELECT value FROM sync_state WHERE key = ?", (PIN_KEY_CHECK,))
        check = row.fetchone()
        if check is not None and str(check[0]) != key.check:
            lost = conn.execute(f"UPDATE holders SET pin_hash = NULL WHERE {_SEALED_PIN}").rowcount
            if lost:
                _mark(conn, DROPPED_PINS)
                logger.warning(
                    "the key store's PIN key is not the one %d PIN hashes were sealed with (a "
                    "new PSAM or key id?): they are dropped until HQ's snapshot brings them",
                    lost,
                )
        store.set_state(conn, PIN_KEY_CHECK, key.check)
        sealed = _seal_plain(conn, key)
        if adopt is not None:
            adopt(key)
    if sealed:
        logger.info("%d PIN hashes sealed with the key store's PIN key", sealed)
    return sealed
