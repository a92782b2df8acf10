"""The PIN key taken from the reader's key store (docs/privacy.md); which master key it is, is
the ``[privacy]`` section's choice (``terminal.config.privacy``)."""

import logging
import threading

from drivers.keystore import KeyStore, derive_pin_key
from models.errors import DriverError, StoreError
from models.pin import PinKey
from terminal.store import Store
from terminal.store.keeping import seal_pins

logger = logging.getLogger(__name__)


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
