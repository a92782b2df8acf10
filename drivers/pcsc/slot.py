"""One reader slot the terminal talks to: its own PC/SC context, on its own call thread.

``SCardTransmit`` has no timeout, and a card or reader driver that never answers would block the
caller forever. Card and PSAM exchanges therefore run on a per-slot call thread with its own
PC/SC context, and the caller waits for each call with a deadline. A call that overruns is
abandoned: its thread disconnects and releases that context once the call returns, and the slot
starts over with a fresh context (pcsc-lite serialises calls per context, so reusing it would
queue behind the stuck call).
"""

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from smartcard import scard  # type: ignore[import-untyped]

from drivers.apdu import CardTornError
from drivers.pcsc.errors import OverrunError, ReaderGoneError, ServiceDownError, translate
from drivers.pcsc.settings import reader_matches
from models.errors import DriverError

logger = logging.getLogger(__name__)

T = TypeVar("T")


def establish_context() -> int:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise translate(hresult, "connecting to pcscd")
    return cast(int, context)


def release_context(context: int) -> None:
    # Best effort: after a pcscd restart the context is already gone on the daemon's side.
    scard.SCardReleaseContext(context)


def reader_names(context: int) -> list[str]:
    hresult, names = scard.SCardListReaders(context, [])
    if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        raise translate(hresult, "listing readers")
    return [str(n) for n in names]


def list_readers() -> list[str]:
    """Names of the readers pcscd knows now; :class:`DriverError` when pcscd is unreachable."""
    context = establish_context()
    try:
        return reader_names(context)
    finally:
        release_context(context)


class CallThread:
    """Runs blocking PC/SC calls one at a time so the caller can stop waiting."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    def call(self, fn: Callable[[], T], timeout: float) -> tuple[T, int]:
        """``fn()``'s result and the nanoseconds it took on this thread (without the handoff)."""
        done = threading.Event()
        results: list[tuple[T, int]] = []
        errors: list[BaseException] = []

        def job() -> None:
            started = time.perf_counter_ns()
            try:
                results.append((fn(), time.perf_counter_ns() - started))
            except BaseException as exc:  # handed to the waiting caller
                errors.append(exc)
            finally:
                done.set()

        self._jobs.put(job)
        if not done.wait(timeout):
            raise OverrunError(f"no answer within {timeout:g} s")
        if errors:
            raise errors[0]
        return results[0]

    def finish(self, cleanup: Callable[[], None] | None = None) -> None:
        """Run ``cleanup`` after the call in progress, if any, then end the thread."""
        if cleanup is not None:
            self._jobs.put(cleanup)
        self._jobs.put(None)


class Slot:
    """One reader slot we talk to: its own PC/SC context and call thread. A :class:`Transport`.

    With a ``pattern`` (the PSAM) the slot finds its reader and connects by itself on the first
    transmit and again after any failure; the card slot is connected per tap instead.

    ``pcsc_ns`` adds up the time spent inside pcsc-lite (pcscd, the reader driver and the card
    answering), so a tap's timing can tell the PC/SC exchanges from the terminal's own work.
    """

    def __init__(self, role: str, timeout: float, pattern: str | None = None) -> None:
        self._role = role
        self._timeout = timeout
        self._pattern = pattern
        self._caller: CallThread | None = None
        self._context: int | None = None
        self._card: int | None = None
        self._protocol = 0
        self.reader: str | None = None
        self.pcsc_ns = 0

    @property
    def connected(self) -> bool:
        return self._card is not None

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        if self._caller is None:
            self._caller = CallThread(f"pcsc-{self._role}")
        try:
            if self._context is None:
                self._context, took = self._caller.call(establish_context, self._timeout)
                self.pcsc_ns += took
            result, took = self._caller.call(fn, self._timeout)
        except OverrunError:
            self._abandon()
            raise CardTornError(f"{what}: no answer within {self._timeout:g} s") from None
        except ServiceDownError:
            self._abandon()
            raise
        self.pcsc_ns += took
        return result

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
                release_context(context)

        caller.finish(cleanup)

    def _context_now(self) -> int:
        # Only called from jobs that _call runs, after it established the context.
        if self._context is None:
            raise ServiceDownError("no PC/SC context")
        return self._context

    def list_readers(self) -> list[str]:
        names = self._call(lambda: reader_names(self._context_now()), "listing readers")
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
            error = translate(hresult, f"connecting to {reader!r}")
            if isinstance(error, ServiceDownError):
                self._abandon()
            raise error
        self._card, self._protocol, self.reader = card, protocol, reader

    def transmit(self, apdu: bytes) -> bytes:
        if self._card is None and self._pattern is not None:
            names = [n for n in self.list_readers() if reader_matches(self._pattern, n)]
            if not names:
                raise ReaderGoneError(f"no {self._role} reader matches {self._pattern!r}")
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
            error = translate(hresult, "exchanging an APDU")
        if isinstance(error, ServiceDownError):
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
