"""The ``[privacy]`` section, and the PIN key taken from the reader's key store (docs/privacy.md).

What a terminal keeps is decided by its role and configuration (``terminal.store.keeping``);
the two choices a site makes on purpose are here: full names instead of the masked form, and
which master key of the key store PIN hashes are sealed with.
"""

import logging
import threading

from pydantic import BaseModel, ConfigDict, Field

from drivers.keystore import KeyStore, derive_pin_key
from models.errors import DriverError, StoreError
from models.pin import PinKey
from terminal.store import Store
from terminal.store.keeping import seal_pins

logger = logging.getLogger(__name__)


class PrivacySection(BaseModel):
    """What this terminal keeps of holders' personal data beyond what its role needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    full_names: bool = Field(
        False,
        description="Keep holders' names in full. Off: the store keeps each name as the display "
        "shows it (family name only, 张*), which is all the customer display and diag show; "
        "a site that needs full names on the terminal sets this on purpose.",
    )
    pin_key_id: int | None = Field(
        None,
        ge=0,
        le=255,
        description="Master key id of the reader's key store (PSAM or key file) that PIN hashes "
        "are sealed with, so that the database alone allows no offline search of PINs; empty: "
        "reader.key_id. Needs a PC/SC reader in cpu mode. Changing it drops the sealed hashes "
        "until HQ's snapshot brings them again.",
    )


class PinKeySource:
    """Derives the PIN key from a key store when asked, once it answers; never raises.

    Asked at start and then by the housekeeping thread until it has the key: a PSAM is often
    not ready when the daemon starts, and asking it on the tap path or inside a store
    transaction would hold up taps.
    """

    def __init__(self, keystore: KeyStore, kid: int) -> None:
        self._keystore = keystore
        self._kid = kid
        self._lock = threading.Lock()
        self._said = False

    def derive(self) -> PinKey | None:
        with self._lock:
            try:
                return PinKey(derive_pin_key(self._keystore, self._kid))
            except (DriverError, ValueError) as exc:
                if not self._said:
                    logger.warning(
                        "PIN key not available yet (%s): PIN hashes from HQ wait as sent, and "
                        "sealed ones cannot be checked, until the key store answers",
                        exc,
                    )
                    self._said = True
                return None


class PinKeys:
    """The PIN key a POS checks sealed PIN hashes with: None until the key store has answered
    (or on a terminal without one). Called, it gives the key; :meth:`adopt` tries to get it."""

    def __init__(self, store: Store, source: PinKeySource | None = None) -> None:
        self._store = store
        self.source = source
        self.key: PinKey | None = None

    def __call__(self) -> PinKey | None:
        return self.key

    def adopt(self) -> None:
        """Take the key once the key store answers, sealing the hashes that waited for it."""
        if self.source is None or self.key is not None:
            return
        key = self.source.derive()
        if key is None:
            return
        try:
            seal_pins(self._store, key, adopt=self._set)
        except StoreError as exc:  # a full disk: tried again at the next housekeeping
            logger.error("could not seal the PIN hashes: %s", exc)

    def _set(self, key: PinKey) -> None:
        self.key = key
