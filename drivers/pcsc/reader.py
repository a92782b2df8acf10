"""The reader's event loop: card insertion and removal, one read per presentation, recovery.

Each :class:`PcscCardReader` runs one worker thread that waits for card insertion and removal
with ``SCardGetStatusChange``, reads each presented card through
:class:`~drivers.cardapp.CardApplication` over a :class:`~drivers.pcsc.slot.Slot` and puts
events on a queue for :meth:`PcscCardReader.next_event`. pyscard's ``CardMonitor`` is not used:
it is a process-wide singleton whose thread prints tracebacks and stops for good when pcscd goes
away (``SCARD_E_NO_SERVICE``), while this reader must outlive pcscd restarts, filter readers by
name, notice a quick remove-and-reinsert through pcsc-lite's event counter, and stop promptly on
:meth:`PcscCardReader.close` (``SCardCancel``).

Failures of the PC/SC service or the reader (pcscd stopped, reader unplugged) restart the worker
with capped exponential backoff; they show in :meth:`PcscCardReader.health`, never as an
exception from :meth:`PcscCardReader.next_event`.
"""

import atexit
import logging
import queue
import threading
import time
import weakref
from dataclasses import dataclass

from smartcard import scard  # type: ignore[import-untyped]

from drivers.cardapp import CardApplication, CardMode, Incomplete
from drivers.interfaces import CardPresented, CardRemoved, Health, ReaderEvent, TapIncomplete
from drivers.keystore import KeyStore, KeyStoreError, PsamKeyStore, SoftwareKeyStore
from drivers.pcsc.errors import ReaderGoneError, UnsupportedCardError, translate
from drivers.pcsc.settings import (
    PcscSettings,
    PsamKeyStoreSettings,
    SoftwareKeyStoreSettings,
    reader_matches,
)
from drivers.pcsc.slot import Slot, establish_context, reader_names, release_context
from drivers.secrets import resolve_secret
from models.cards import CardFault, Genuineness, PresentedCard, mask_card_number
from models.errors import CardError, ConfigError, DriverError
from models.reasons import Reason

logger = logging.getLogger(__name__)

_WATCH_MS = 1000  # how long one SCardGetStatusChange waits; close() cancels it sooner
_FIRST_BACKOFF = 0.1


@dataclass(frozen=True, slots=True)
class TapTiming:
    """How long the reader's part of the last read took: for the health report and benchmarks.

    ``detected_ns`` is :func:`time.perf_counter_ns` when pcscd reported the card present, so a
    caller can measure on to its own later step (the gate command) on the same clock.
    """

    detected_ns: int
    read_ns: int  # detection to the event queued: connect, APDUs, key store, disconnect
    pcsc_ns: int  # the part spent inside pcsc-lite (pcscd, reader driver, card; PSAM included)


_open_readers: "weakref.WeakSet[PcscCardReader]" = weakref.WeakSet()


@atexit.register
def _close_open_readers() -> None:
    # A reader thread still inside pcsc-lite at interpreter exit can hang the process.
    for reader in list(_open_readers):
        reader.close()


class PcscCardReader:
    """A contactless reader behind pcscd, implementing :class:`drivers.interfaces.CardReader`.

    Events: one :class:`CardPresented` per insertion (a card left on the reader is not read
    again until it has been removed), then :class:`CardRemoved` when that card leaves;
    :class:`TapIncomplete` when the card left, stopped answering or the key store failed
    before the read finished (no :class:`CardRemoved` follows it).
    """

    def __init__(self, settings: PcscSettings, keystore: KeyStore | None = None) -> None:
        self._settings = settings
        mode = CardMode(settings.mode)
        self._sam_slot: Slot | None = None
        store = settings.key_store
        if mode is CardMode.CPU and keystore is None:
            if isinstance(store, PsamKeyStoreSettings):
                self._sam_slot = Slot("psam", settings.apdu_timeout, store.reader_pattern)
                keystore = PsamKeyStore(self._sam_slot, aid=bytes.fromhex(store.aid))
            elif isinstance(store, SoftwareKeyStoreSettings):
                try:
                    key_file = resolve_secret(store.key_file)
                except ValueError as exc:
                    raise ConfigError(f"key_store.key_file: {exc}") from None
                keystore = SoftwareKeyStore.from_file(key_file)
            else:
                raise ConfigError("mode cpu needs a key_store")
        self._keystore = keystore
        self._app = CardApplication(
            keystore, mode=mode, aid=bytes.fromhex(settings.aid), key_id=settings.key_id
        )
        self._events: queue.Queue[ReaderEvent] = queue.Queue()
        self._card_slot = Slot("card", settings.apdu_timeout)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watch_context: int | None = None
        self._state = "starting"
        self._problem = ""
        self._reader_name: str | None = None
        self._taps = self._incomplete = self._recoveries = 0
        self._last_tap: TapTiming | None = None
        self._sam_ok = True
        self._sam_checked = 0.0
        self._attached = False
        self._owe_removal = False  # a CardPresented was emitted and its card has not left yet
        if mode is CardMode.UID:
            logger.warning(
                "card reader in UID mode: cards are identified by their UID only, which anyone "
                "can copy to another chip; there is no genuine-card check"
            )
        _open_readers.add(self)
        self._thread = threading.Thread(target=self._run, name="pcsc-reader", daemon=True)
        self._thread.start()

    # -- the CardReader interface ---------------------------------------------------------

    def next_event(self, timeout: float) -> ReaderEvent | None:
        if self._stop.is_set():
            raise DriverError("PC/SC reader is closed")
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def health(self) -> Health:
        with self._lock:
            ok = self._state == "ready" and self._sam_ok
            # The reader's own trouble hides a key store problem: it has to be fixed first.
            state = "key_store_unavailable" if self._state == "ready" and not ok else self._state
            parts = [
                f"reader {self._reader_name!r}" if self._reader_name else "no reader yet",
                f"mode {self._app.mode.value}",
                f"{self._taps} taps, {self._incomplete} incomplete, {self._recoveries} recoveries",
            ]
            if self._app.mode is CardMode.UID:
                parts.append("UID mode: no genuine-card check, UIDs can be cloned")
            if self._last_tap is not None:
                parts.append(
                    f"last read {self._last_tap.read_ns / 1e6:.1f} ms "
                    f"(PC/SC {self._last_tap.pcsc_ns / 1e6:.1f} ms)"
                )
            if self._problem:
                parts.append(f"last problem: {self._problem}")
        warning = None
        if self._app.mode is CardMode.UID:
            warning = "UID mode: no genuine-card check; a card's UID can be cloned onto any chip"
        return Health(ok=ok, state=state, detail="; ".join(parts), warning=warning)

    @property
    def key_store(self) -> KeyStore | None:
        """The genuine-card check's key store (None in UID mode), which also derives the key PIN
        hashes are sealed with (docs/privacy.md)."""
        return self._keystore

    @property
    def last_tap(self) -> TapTiming | None:
        """Timing of the last read that produced a :class:`CardPresented`, if any."""
        with self._lock:
            return self._last_tap

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        context = self._watch_context
        if context is not None:
            scard.SCardCancel(context)  # the one call pcsc-lite allows from another thread
        self._thread.join(timeout=_WATCH_MS / 1000 + 2 * self._settings.apdu_timeout + 1)
        self._card_slot.close()
        if self._sam_slot is not None:
            self._sam_slot.close()
        with self._lock:
            self._state = "closed"
        _open_readers.discard(self)

    # -- worker ---------------------------------------------------------------------------

    def _set_state(self, state: str, problem: str = "") -> None:
        with self._lock:
            previous, self._state = self._state, state
            if problem:
                self._problem = problem
        if state != previous:
            if state == "ready":
                logger.info("card reader ready: %r", self._reader_name)
            else:
                logger.warning("card reader %s: %s", state, problem)

    def _run(self) -> None:
        delay = 0.0
        failed = False
        while not self._stop.is_set():
            self._attached = False
            try:
                self._attach_and_watch(recovering=failed)
            except DriverError as exc:
                self._set_state(getattr(exc, "state", "reader_error"), str(exc))
            except Exception:
                # A bug must not end the reader for good; log it and start over.
                logger.exception("card reader loop failed; restarting it")
                self._set_state("reader_error", "internal error (see log)")
            else:
                return
            finally:
                # Whatever was on the reader can no longer be vouched for: close its tap, and
                # a card still there after recovery is a new presentation.
                self._removed()
                context, self._watch_context = self._watch_context, None
                if context is not None:
                    release_context(context)
            failed = True
            # A reader that worked earns a fresh start; repeated failures back off to the cap.
            delay = _FIRST_BACKOFF if self._attached else delay * 2
            delay = min(max(delay, _FIRST_BACKOFF), self._settings.reconnect_max_seconds)
            self._stop.wait(delay)

    def _attach_and_watch(self, *, recovering: bool) -> None:
        if recovering:
            # Handles from before a pcscd restart are dead; start the card slot afresh.
            self._card_slot.close()
        self._watch_context = context = establish_context()
        reader = self._pick_reader(reader_names(context))
        with self._lock:
            self._reader_name = reader
            if recovering:
                self._recoveries += 1
        self._attached = True
        self._set_state("ready")
        self._check_sam(force=True)
        self._watch(context, reader)

    def _pick_reader(self, names: list[str]) -> str:
        store = self._settings.key_store
        sam_pattern = store.reader_pattern if isinstance(store, PsamKeyStoreSettings) else None
        candidates = sorted(
            n
            for n in names
            if reader_matches(self._settings.reader_pattern, n)
            and not (sam_pattern is not None and reader_matches(sam_pattern, n))
        )
        if not candidates:
            raise ReaderGoneError(
                f"no reader matches {self._settings.reader_pattern!r} "
                f"(pcscd has {', '.join(map(repr, names)) or 'none'})"
            )
        return candidates[0]

    def _check_sam(self, *, force: bool = False) -> None:
        keystore = self._keystore
        if not isinstance(keystore, PsamKeyStore):
            return
        now = time.monotonic()
        recheck_after = self._settings.reconnect_max_seconds
        if not force and (self._sam_ok or now - self._sam_checked < recheck_after):
            return
        self._sam_checked = now
        try:
            keystore.check()
        except KeyStoreError as exc:
            self._key_store_state(exc)
        else:
            self._key_store_state(None)

    def _key_store_state(self, failure: KeyStoreError | None) -> None:
        with self._lock:
            was_ok, self._sam_ok = self._sam_ok, failure is None
            if failure is not None:
                self._problem = str(failure)
        if was_ok and failure is not None:
            logger.error("key store unavailable, cards cannot be verified: %s", failure)
        elif not was_ok and failure is None:
            logger.info("key store available again")

    def _watch(self, context: int, reader: str) -> None:
        current = scard.SCARD_STATE_UNAWARE
        handled = False  # the card now in the field has been dealt with
        counter = 0
        while not self._stop.is_set():
            hresult, states = scard.SCardGetStatusChange(context, _WATCH_MS, [(reader, current)])
            detected_ns = time.perf_counter_ns()
            if hresult == scard.SCARD_E_TIMEOUT:
                self._check_sam()
                continue
            if hresult == scard.SCARD_E_CANCELLED:
                continue
            if hresult != scard.SCARD_S_SUCCESS:
                raise translate(hresult, f"watching {reader!r}")
            event = int(states[0][1])
            if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                raise ReaderGoneError(f"reader {reader!r} disappeared")
            current = event & ~scard.SCARD_STATE_CHANGED
            present = bool(event & scard.SCARD_STATE_PRESENT) and not (
                event & scard.SCARD_STATE_MUTE
            )
            # pcsc-lite counts insertions and removals in the high 16 bits; a jump of two or
            # more while we saw the card present means it left and came back between polls.
            new_counter = event >> 16
            if handled and present and (new_counter - counter) & 0xFFFF >= 2:
                handled = self._removed()
            if present and not handled:
                handled, counter = True, new_counter
                self._owe_removal = self._tap(reader, detected_ns)
            elif not present and handled:
                handled = self._removed()

    def _removed(self) -> bool:
        """Emit the CardRemoved owed for a CardPresented; returns the new ``handled`` flag."""
        if self._owe_removal:
            self._owe_removal = False
            self._events.put(CardRemoved())
        return False

    def _tap(self, reader: str, detected_ns: int) -> bool:
        """Read the card now in the field; True when a CardPresented was emitted."""
        with self._lock:
            self._taps += 1
        slots = [s for s in (self._card_slot, self._sam_slot) if s is not None]
        for slot in slots:
            slot.pcsc_ns = 0
        try:
            self._card_slot.connect(reader)
            try:
                result = self._app.read(self._card_slot)
            finally:
                self._card_slot.disconnect()
        except KeyStoreError as exc:
            self._key_store_state(exc)
            return self._incomplete_tap(f"key store unavailable: {exc}")
        except UnsupportedCardError as exc:
            result = CardFault(Reason.CARD_UNKNOWN, str(exc))
        except CardError as exc:
            return self._incomplete_tap(str(exc))
        except DriverError as exc:
            self._incomplete_tap(str(exc))
            raise
        if isinstance(result, Incomplete):
            return self._incomplete_tap(result.detail)
        timing = TapTiming(
            detected_ns=detected_ns,
            read_ns=time.perf_counter_ns() - detected_ns,
            pcsc_ns=sum(slot.pcsc_ns for slot in slots),
        )
        with self._lock:
            self._last_tap = timing
        # The event goes out before the log line: the person at the gate is waiting for it.
        self._events.put(CardPresented(result))
        if isinstance(result, PresentedCard):
            if result.genuine is Genuineness.GENUINE:
                self._key_store_state(None)
            logger.info(
                "card %s presented (%s) in %.1f ms",
                mask_card_number(result.number),
                result.genuine.value,
                timing.read_ns / 1e6,
            )
        else:
            logger.info("card fault %s: %s", result.reason.value, result.detail)
        return True

    def _incomplete_tap(self, detail: str) -> bool:
        with self._lock:
            self._incomplete += 1
        logger.info("tap incomplete: %s", detail)
        self._events.put(TapIncomplete(detail))
        return False
