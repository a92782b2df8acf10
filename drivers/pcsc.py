"""PC/SC card reader (and PSAM slot): the only module that imports pyscard.

Threads. Each :class:`PcscCardReader` runs one worker thread that waits for card insertion and
removal with ``SCardGetStatusChange``, reads each presented card through
:class:`~drivers.cardapp.CardApplication` and puts events on a queue for :meth:`next_event`.
pyscard's ``CardMonitor`` is not used: it is a process-wide singleton whose thread prints
tracebacks and stops for good when pcscd goes away (``SCARD_E_NO_SERVICE``), while this reader
must outlive pcscd restarts, filter readers by name, notice a quick remove-and-reinsert through
pcsc-lite's event counter, and stop promptly on :meth:`close` (``SCardCancel``).

``SCardTransmit`` has no timeout, and a card or reader driver that never answers would block the
caller forever. Card and PSAM exchanges therefore run on a per-slot call thread with its own
PC/SC context, and the worker waits for each call with a deadline. A call that overruns is
abandoned: its thread disconnects and releases that context once the call returns, and the slot
starts over with a fresh context (pcsc-lite serialises calls per context, so reusing it would
queue behind the stuck call).

Failures of the PC/SC service or the reader (pcscd stopped, reader unplugged) restart the worker
with capped exponential backoff; they show in :meth:`health`, never as an exception from
:meth:`next_event`.
"""

import atexit
import logging
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from smartcard import scard  # type: ignore[import-untyped]

from drivers.cardapp import DEFAULT_AID, CardApplication, CardMode, CardTornError, Incomplete
from drivers.interfaces import CardPresented, CardRemoved, Health, ReaderEvent, TapIncomplete
from drivers.keystore import (
    DEFAULT_SAM_AID,
    KeyStore,
    KeyStoreError,
    PsamKeyStore,
    SoftwareKeyStore,
)
from models.cards import CardFault, Genuineness, PresentedCard, mask_card_number
from models.errors import CardError, ConfigError, DriverError
from models.reasons import Reason

logger = logging.getLogger(__name__)

T = TypeVar("T")

_WATCH_MS = 1000  # how long one SCardGetStatusChange waits; close() cancels it sooner
_FIRST_BACKOFF = 0.1


class _ServiceDownError(DriverError):
    """pcscd is not running or was restarted under us."""

    state = "pcscd_unavailable"


class _ReaderGoneError(DriverError):
    """The configured reader is not (or no longer) connected."""

    state = "reader_missing"


class _UnsupportedCardError(CardError):
    """The card in the field speaks neither T=0 nor T=1 (e.g. a memory card)."""


class _OverrunError(DriverError):
    """A PC/SC call did not return before its deadline."""


# PC/SC return codes by what they mean for us; anything else is a plain DriverError.
_ERRORS: dict[int, type[DriverError]] = {
    getattr(scard, f"SCARD_{name}"): kind
    for kind, names in (
        (CardTornError, "W_REMOVED_CARD E_NO_SMARTCARD W_RESET_CARD W_UNPOWERED_CARD"),
        (CardTornError, "W_UNRESPONSIVE_CARD E_NOT_TRANSACTED"),
        (_UnsupportedCardError, "E_PROTO_MISMATCH W_UNSUPPORTED_CARD E_CARD_UNSUPPORTED"),
        (CardError, "E_SHARING_VIOLATION"),
        (_ServiceDownError, "E_NO_SERVICE E_SERVICE_STOPPED E_INVALID_HANDLE F_COMM_ERROR"),
        (_ReaderGoneError, "E_NO_READERS_AVAILABLE E_UNKNOWN_READER E_READER_UNAVAILABLE"),
    )
    for name in names.split()
}


def _error(hresult: int, what: str) -> DriverError:
    """Translate a PC/SC return code into the project's exception tree."""
    text = f"{what}: {scard.SCardGetErrorMessage(hresult)} (0x{hresult & 0xFFFFFFFF:08X})"
    return _ERRORS.get(hresult, DriverError)(text)


def _establish_context() -> int:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise _error(hresult, "connecting to pcscd")
    return cast(int, context)


def _release_context(context: int) -> None:
    # Best effort: after a pcscd restart the context is already gone on the daemon's side.
    scard.SCardReleaseContext(context)


def _list_readers(context: int) -> list[str]:
    hresult, names = scard.SCardListReaders(context, [])
    if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        raise _error(hresult, "listing readers")
    return [str(n) for n in names]


def list_readers() -> list[str]:
    """Names of the readers pcscd knows now; :class:`DriverError` when pcscd is unreachable."""
    context = _establish_context()
    try:
        return _list_readers(context)
    finally:
        _release_context(context)


def reader_matches(pattern: str, name: str) -> bool:
    """A case-insensitive substring, or failing that a regular expression searched in ``name``."""
    if pattern.lower() in name.lower():
        return True
    try:
        return re.search(pattern, name, re.IGNORECASE) is not None
    except re.error:
        return False


def _hex_setting(value: str, name: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not hex") from None
    if not 5 <= len(raw) <= 16:
        raise ConfigError(f"{name}: an AID has 5 to 16 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True, slots=True)
class PcscSettings:
    """What the PC/SC reader needs; the terminal's config layer fills it from TOML."""

    reader_pattern: str = ""  # substring or regex of the contactless reader's name; "" = any
    sam_reader_pattern: str | None = None  # the PSAM slot; None = no PSAM
    mode: str = CardMode.CPU.value  # "cpu" (genuine-card check) or "uid" (legacy, clonable)
    aid: str = DEFAULT_AID.hex().upper()
    key_id: int = 1
    key_file: Path | None = None  # software key store, when there is no PSAM
    sam_aid: str | None = DEFAULT_SAM_AID.hex().upper()  # None: the PSAM needs no SELECT
    apdu_timeout: float = 1.0  # seconds for one APDU (and for connecting)
    max_backoff: float = 5.0  # cap of the retry delay while pcscd or the reader is missing

    def __post_init__(self) -> None:
        try:
            CardMode(self.mode)
        except ValueError:
            raise ConfigError(f"mode: {self.mode!r} is not 'cpu' or 'uid'") from None
        _hex_setting(self.aid, "aid")
        if self.sam_aid is not None:
            _hex_setting(self.sam_aid, "sam_aid")
        if not 0 <= self.key_id <= 0xFF:
            raise ConfigError(f"key_id: {self.key_id} is outside 0..255")
        if not 0 < self.apdu_timeout <= 30:
            raise ConfigError(f"apdu_timeout: {self.apdu_timeout} s is outside (0, 30]")
        if not 0 < self.max_backoff <= 300:
            raise ConfigError(f"max_backoff: {self.max_backoff} s is outside (0, 300]")


class _CallThread:
    """Runs blocking PC/SC calls one at a time so the caller can stop waiting."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def call(self, fn: Callable[[], T], timeout: float) -> T:
        done = threading.Event()
        results: list[T] = []
        errors: list[BaseException] = []

        def job() -> None:
            try:
                results.append(fn())
            except BaseException as exc:  # handed to the waiting caller
                errors.append(exc)
            finally:
                done.set()

        self._jobs.put(job)
        if not done.wait(timeout):
            raise _OverrunError(f"no answer within {timeout:g} s")
        if errors:
            raise errors[0]
        return results[0]

    def finish(self, cleanup: Callable[[], None] | None = None) -> None:
        """Run ``cleanup`` after the call in progress, if any, then end the thread."""
        if cleanup is not None:
            self._jobs.put(cleanup)
        self._jobs.put(None)


class _Slot:
    """One reader slot we talk to: its own PC/SC context and call thread. A :class:`Transport`.

    With a ``pattern`` (the PSAM) the slot finds its reader and connects by itself on the first
    transmit and again after any failure; the card slot is connected per tap instead.
    """

    def __init__(self, role: str, timeout: float, pattern: str | None = None) -> None:
        self._role = role
        self._timeout = timeout
        self._pattern = pattern
        self._caller: _CallThread | None = None
        self._context: int | None = None
        self._card: int | None = None
        self._protocol = 0
        self.reader: str | None = None

    @property
    def connected(self) -> bool:
        return self._card is not None

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        if self._caller is None:
            self._caller = _CallThread(f"pcsc-{self._role}")
        try:
            if self._context is None:
                self._context = self._caller.call(_establish_context, self._timeout)
            return self._caller.call(fn, self._timeout)
        except _OverrunError:
            self._abandon()
            raise CardTornError(f"{what}: no answer within {self._timeout:g} s") from None
        except _ServiceDownError:
            self._abandon()
            raise

    def _abandon(self) -> None:
        """Leave the context (and any stuck call) to the call thread and start afresh."""
        caller, context, card = self._caller, self._context, self._card
        self._caller, self._context, self._card, self.reader = None, None, None, None
        if caller is None:
            return

        def cleanup() -> None:
            if card is not None:
                scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
            if context is not None:
                _release_context(context)

        caller.finish(cleanup)

    def _context_now(self) -> int:
        # Only called from jobs that _call runs, after it established the context.
        if self._context is None:
            raise _ServiceDownError("no PC/SC context")
        return self._context

    def list_readers(self) -> list[str]:
        names = self._call(lambda: _list_readers(self._context_now()), "listing readers")
        return cast(list[str], names)

    def connect(self, reader: str) -> None:
        self.disconnect()
        hresult, card, protocol = self._call(
            lambda: scard.SCardConnect(
                self._context_now(),
                reader,
                scard.SCARD_SHARE_EXCLUSIVE,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            ),
            f"connecting to {reader!r}",
        )
        if hresult != scard.SCARD_S_SUCCESS:
            error = _error(hresult, f"connecting to {reader!r}")
            if isinstance(error, _ServiceDownError):
                self._abandon()
            raise error
        self._card, self._protocol, self.reader = card, protocol, reader

    def transmit(self, apdu: bytes) -> bytes:
        if self._card is None and self._pattern is not None:
            names = [n for n in self.list_readers() if reader_matches(self._pattern, n)]
            if not names:
                raise _ReaderGoneError(f"no {self._role} reader matches {self._pattern!r}")
            self.connect(sorted(names)[0])
        card, protocol = self._card, self._protocol
        if card is None:
            raise CardTornError("no card connected")
        hresult, response = self._call(
            lambda: scard.SCardTransmit(card, protocol, list(apdu)), "exchanging an APDU"
        )
        if hresult == scard.SCARD_S_SUCCESS and response:
            return bytes(response)
        if hresult == scard.SCARD_S_SUCCESS:
            # vpcd (and some reader drivers) report success with no bytes when the card went
            # away mid-command; a card that is there always answers at least SW1 SW2.
            error: DriverError = CardTornError("exchanging an APDU: the card gave no answer")
        else:
            error = _error(hresult, "exchanging an APDU")
        if isinstance(error, _ServiceDownError):
            self._abandon()
        elif self._pattern is not None:
            self.disconnect()  # so the next transmit finds and connects the SAM afresh
        raise error

    def disconnect(self) -> None:
        card = self._card
        if card is None:
            return
        self._card = None
        try:
            self._call(lambda: scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD), "disconnecting")
        except DriverError as exc:
            logger.debug("%s slot: disconnect failed: %s", self._role, exc)

    def close(self) -> None:
        self.disconnect()
        self._abandon()


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
        self._sam_slot: _Slot | None = None
        if mode is CardMode.CPU and keystore is None:
            if settings.sam_reader_pattern is not None:
                self._sam_slot = _Slot("psam", settings.apdu_timeout, settings.sam_reader_pattern)
                sam_aid = None if settings.sam_aid is None else bytes.fromhex(settings.sam_aid)
                keystore = PsamKeyStore(self._sam_slot, aid=sam_aid)
            elif settings.key_file is not None:
                keystore = SoftwareKeyStore.from_file(settings.key_file)
            else:
                raise ConfigError("mode cpu needs key_file or sam_reader_pattern")
        self._keystore = keystore
        self._app = CardApplication(
            keystore, mode=mode, aid=bytes.fromhex(settings.aid), key_id=settings.key_id
        )
        self._events: queue.Queue[ReaderEvent] = queue.Queue()
        self._card_slot = _Slot("card", settings.apdu_timeout)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watch_context: int | None = None
        self._state = "starting"
        self._problem = ""
        self._reader_name: str | None = None
        self._taps = self._incomplete = self._recoveries = 0
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
            if self._problem:
                parts.append(f"last problem: {self._problem}")
        return Health(ok=ok, state=state, detail="; ".join(parts))

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
                    _release_context(context)
            failed = True
            # A reader that worked earns a fresh start; repeated failures back off to the cap.
            delay = _FIRST_BACKOFF if self._attached else delay * 2
            delay = min(max(delay, _FIRST_BACKOFF), self._settings.max_backoff)
            self._stop.wait(delay)

    def _attach_and_watch(self, *, recovering: bool) -> None:
        if recovering:
            # Handles from before a pcscd restart are dead; start the card slot afresh.
            self._card_slot.close()
        self._watch_context = context = _establish_context()
        reader = self._pick_reader(_list_readers(context))
        with self._lock:
            self._reader_name = reader
            if recovering:
                self._recoveries += 1
        self._attached = True
        self._set_state("ready")
        self._check_sam(force=True)
        self._watch(context, reader)

    def _pick_reader(self, names: list[str]) -> str:
        sam_pattern = self._settings.sam_reader_pattern
        candidates = sorted(
            n
            for n in names
            if reader_matches(self._settings.reader_pattern, n)
            and not (sam_pattern is not None and reader_matches(sam_pattern, n))
        )
        if not candidates:
            raise _ReaderGoneError(
                f"no reader matches {self._settings.reader_pattern!r} "
                f"(pcscd has {', '.join(map(repr, names)) or 'none'})"
            )
        return candidates[0]

    def _check_sam(self, *, force: bool = False) -> None:
        keystore = self._keystore
        if not isinstance(keystore, PsamKeyStore):
            return
        now = time.monotonic()
        if not force and (self._sam_ok or now - self._sam_checked < self._settings.max_backoff):
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
            if hresult == scard.SCARD_E_TIMEOUT:
                self._check_sam()
                continue
            if hresult == scard.SCARD_E_CANCELLED:
                continue
            if hresult != scard.SCARD_S_SUCCESS:
                raise _error(hresult, f"watching {reader!r}")
            event = int(states[0][1])
            if event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                raise _ReaderGoneError(f"reader {reader!r} disappeared")
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
                self._owe_removal = self._tap(reader)
            elif not present and handled:
                handled = self._removed()

    def _removed(self) -> bool:
        """Emit the CardRemoved owed for a CardPresented; returns the new ``handled`` flag."""
        if self._owe_removal:
            self._owe_removal = False
            self._events.put(CardRemoved())
        return False

    def _tap(self, reader: str) -> bool:
        """Read the card now in the field; True when a CardPresented was emitted."""
        with self._lock:
            self._taps += 1
        started = time.perf_counter()
        try:
            self._card_slot.connect(reader)
            try:
                result = self._app.read(self._card_slot)
            finally:
                self._card_slot.disconnect()
        except KeyStoreError as exc:
            self._key_store_state(exc)
            return self._incomplete_tap(f"key store unavailable: {exc}")
        except _UnsupportedCardError as exc:
            result = CardFault(Reason.CARD_UNKNOWN, str(exc))
        except CardError as exc:
            return self._incomplete_tap(str(exc))
        except DriverError as exc:
            self._incomplete_tap(str(exc))
            raise
        elapsed_ms = (time.perf_counter() - started) * 1000
        if isinstance(result, Incomplete):
            return self._incomplete_tap(result.detail)
        if isinstance(result, PresentedCard):
            if result.genuine is Genuineness.GENUINE:
                self._key_store_state(None)
            logger.info(
                "card %s presented (%s) in %.1f ms",
                mask_card_number(result.number),
                result.genuine.value,
                elapsed_ms,
            )
        else:
            logger.info("card fault %s: %s", result.reason.value, result.detail)
        self._events.put(CardPresented(result))
        return True

    def _incomplete_tap(self, detail: str) -> bool:
        with self._lock:
            self._incomplete += 1
        logger.info("tap incomplete: %s", detail)
        self._events.put(TapIncomplete(detail))
        return False
