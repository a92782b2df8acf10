"""What only the running daemon can tell or do: device health, recent activity, the dry-run tap,
the gate test, and the camera and face checks (:mod:`terminal.diag.faces`).

The reader the flow polls is wrapped in :class:`_ReaderTap`. Everything that must not race the
tap loop runs *on* the tap loop: the wrapper runs queued jobs (a gate test) just before the flow
asks for its next reader event, which is exactly when no tap is in progress. A dry run arms the
wrapper; the next card presentation is then handed to diag instead of the flow, so it is decided
against the same store and rules but never committed and never opens the gate.
"""

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drivers.interfaces import (
    CardPresented,
    CardReader,
    Display,
    Health,
    PassageOutcome,
    ReaderEvent,
    Screen,
)
from models.cards import CardFault, Credential, PresentedCard
from models.decide import decide
from models.decision import Decision
from models.door import DoorRequest, DoorView
from models.errors import DriverError, StoreError
from models.pin import mask_name
from models.pos import PosRequest, PosView
from models.reasons import message_en, message_zh
from terminal.clock import rfc3339
from terminal.diag import faces as face_diag
from terminal.diag.facts import mask_card
from terminal.diag.protocol import GATE_TEST_MAX_SECONDS, DiagError, ErrorCode, Level
from terminal.diag.redact import mask_digits
from terminal.flows.door import DoorFlow, FlowNotice, TapOutcome
from terminal.flows.pos import PosFlow, PosOutcome
from terminal.store import SecurityEvent

if TYPE_CHECKING:  # app.py may import diag to wire it; the type is all that is needed here
    from terminal.app import App

logger = logging.getLogger(__name__)

ACTIVITY = 50  # recent taps and notices kept for `watch`


class _ReaderTap:
    """The flow's reader, with diag's two hooks in its ``next_event``."""

    def __init__(self, live: "LiveTerminal", inner: CardReader) -> None:
        self._live = live
        self.inner = inner

    def next_event(self, timeout: float) -> ReaderEvent | None:
        self._live.run_jobs()
        event = self.inner.next_event(timeout)
        if isinstance(event, CardPresented) and self._live.offer(event.credential):
            return None
        return event

    def health(self) -> Health:
        return self.inner.health()

    def close(self) -> None:
        self.inner.close()


class _DisplayTap:
    """The POS display, remembering what it last said (``watch`` shows "system fault" et al.)."""

    def __init__(self, live: "LiveTerminal", inner: Display) -> None:
        self._live = live
        self.inner = inner

    def show(self, screen: Screen) -> None:
        # Only headline and tone: the lines may carry a (masked) name and a balance.
        self._live.note({"what": "screen", "headline": screen.headline, "tone": screen.tone})
        self.inner.show(screen)

    def close(self) -> None:
        self.inner.close()


class _DryRun:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.credential: Credential | None = None


def _health(health: Health) -> dict[str, Any]:
    return {"ok": health.ok, "state": health.state, "detail": mask_digits(health.detail)}


def describe_credential(credential: Credential) -> dict[str, Any]:
    """What the reader decoded, with the number masked."""
    if isinstance(credential, CardFault):
        return {
            "fault": str(credential.reason),
            "detail": mask_digits(credential.detail),
            "number": mask_card(credential.number),
        }
    assert isinstance(credential, PresentedCard)
    return {
        "number": mask_card(credential.number),
        "genuine": str(credential.genuine),
        "issue_seq": credential.issue_seq,
        "class_code": credential.class_code,
        "valid_from": credential.valid_from.isoformat() if credential.valid_from else None,
        "valid_until": credential.valid_until.isoformat() if credential.valid_until else None,
    }


def describe_decision(decision: Decision) -> dict[str, Any]:
    payment = decision.payment
    return {
        "allowed": decision.allowed,
        "reason": str(decision.reason),
        "message_zh": message_zh(decision.reason),
        "message_en": message_en(decision.reason),
        "alert": None if decision.alert is None else str(decision.alert),
        "detail": mask_digits(decision.detail),
        "amount": None if payment is None else payment.amount,
        "split": [] if payment is None else [[str(p), a] for p, a in payment.split],
    }


class LiveTerminal:
    """Diag's handle on a running :class:`~terminal.app.App`; :meth:`detach` undoes the hooks."""

    def __init__(self, app: "App") -> None:
        self.app = app
        # Built right before the tap loop starts, so this is the daemon's uptime to a few ms.
        self.started_mono = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.pid = os.getpid()
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._dry_run: _DryRun | None = None
        self._activity: deque[dict[str, Any]] = deque(maxlen=ACTIVITY)
        flow: DoorFlow | PosFlow | None = app.door_flow or app.pos_flow
        if flow is None:
            raise ValueError("the App has neither a door nor a POS flow")
        self._flow = flow
        self._reader_tap = _ReaderTap(self, self._flow.reader)
        self._flow.reader = self._reader_tap
        self._display_tap: _DisplayTap | None = None
        if isinstance(self._flow, PosFlow):
            self._display_tap = _DisplayTap(self, self._flow.display)
            self._flow.display = self._display_tap
            self._flow.listeners.append(self._on_payment)
        else:
            self._flow.listeners.append(self._on_door)

    def detach(self) -> None:
        flow = self._flow
        flow.reader = self._reader_tap.inner
        if isinstance(flow, PosFlow):
            if self._display_tap is not None:
                flow.display = self._display_tap.inner
            flow.listeners.remove(self._on_payment)
        else:
            flow.listeners.remove(self._on_door)

    # -- what the daemon is ---------------------------------------------------------------------

    def daemon(self) -> dict[str, Any]:
        with self._lock:
            armed = self._dry_run is not None
        return {
            "running": True,
            "pid": self.pid,
            "started_at": rfc3339(self.started_at),
            "uptime_s": int(time.monotonic() - self.started_mono),
            "flow_state": str(self._flow.state),
            "card_dry_run_waiting": armed,
        }

    def devices(self) -> dict[str, Any]:
        found = {"reader": _health(self.app.reader.health())}
        if self.app.door_flow is not None:
            found["gate"] = _health(self.app.door_flow.gate.health())
        return found

    def activity(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._activity)

    def note(self, entry: dict[str, Any]) -> None:
        entry.setdefault("at", rfc3339(datetime.now(UTC)))
        with self._lock:
            self._activity.append(entry)

    def _on_door(self, message: TapOutcome | FlowNotice) -> None:
        if isinstance(message, FlowNotice):
            self.note({"at": rfc3339(message.at), "what": str(message.notice)})
            return
        decision = message.decision
        self.note(
            {
                "at": rfc3339(message.at),
                "what": "tap",
                "seq": message.committed.seq,
                "card": mask_card(decision.card_number),
                "decision": "allow" if decision.allowed else "deny",
                "reason": str(decision.reason),
                "passage": None if message.passage is None else str(message.passage),
            }
        )

    def _on_payment(self, outcome: PosOutcome) -> None:
        decision = outcome.decision
        self.note(
            {
                "at": rfc3339(outcome.at),
                "what": outcome.kind,
                "seq": outcome.committed.seq,
                "card": mask_card(decision.card_number),
                "decision": "allow" if decision.allowed else "deny",
                "reason": str(decision.reason),
                "amount": None if decision.payment is None else decision.payment.amount,
            }
        )

    # -- the tap loop's side --------------------------------------------------------------------

    def run_jobs(self) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            job()

    def offer(self, credential: Credential) -> bool:
        """Take ``credential`` for a waiting dry run; False (the flow handles it) otherwise."""
        with self._lock:
            waiting, self._dry_run = self._dry_run, None
        if waiting is None:
            return False
        waiting.credential = credential
        waiting.done.set()
        logger.info("diag: card taken for a dry run, not decided by the flow")
        return True

    def on_loop(self, job: Callable[[], Any], timeout: float) -> Any:
        """Run ``job`` on the tap loop between taps and return its result."""
        done, cancelled = threading.Event(), threading.Event()
        box: list[Any] = []
        errors: list[BaseException] = []

        def wrapped() -> None:
            if cancelled.is_set():
                # Its caller gave up: a gate must not open minutes after the technician left.
                return
            try:
                box.append(job())
            except BaseException as exc:  # handed back to the diag thread, not lost
                errors.append(exc)
            finally:
                done.set()

        self._jobs.put(wrapped)
        if not done.wait(timeout):
            cancelled.set()
            raise DiagError(ErrorCode.TIMEOUT, "the tap loop did not get to it in time")
        if errors:
            raise errors[0]
        return box[0]

    # -- commands -------------------------------------------------------------------------------

    def dry_run(self, timeout: float, amount: int | None) -> dict[str, Any]:
        """Wait for the next tap and say what it would get; nothing is committed or opened."""
        waiting = _DryRun()
        with self._lock:
            if self._dry_run is not None:
                raise DiagError(ErrorCode.BUSY, "another card dry run is already waiting")
            self._dry_run = waiting
        if not waiting.done.wait(timeout):
            with self._lock:
                if self._dry_run is waiting:
                    self._dry_run = None
            if waiting.credential is None:
                raise DiagError(ErrorCode.TIMEOUT, f"no card was tapped within {timeout:g} s")
        credential = waiting.credential
        assert credential is not None
        flow = self._flow
        now = flow.clock.now().astimezone(flow.timezone)
        number = credential.number or ""
        view: DoorView | PosView
        if isinstance(flow, DoorFlow):
            settings = flow.settings
            view = self.app.store.door_view(
                number, settings.door_id, now.date(), settings.anti_passback
            )
            decision = decide(
                DoorRequest(credential, settings.door_id, settings.direction), view, now
            )
            where = {"door": settings.door_id, "direction": settings.direction}
        else:
            view = flow.store.pos_view(
                number,
                merchant_id=flow.settings.merchant_id,
                service=flow.settings.service,
                policy=flow.settings.policy,
                now=now,
                degraded=flow.degraded(),
            )
            decision = decide(PosRequest(credential, amount), view, now)
            where = {"merchant": flow.settings.merchant_id, "service": str(flow.settings.service)}
        card, holder = view.card, view.holder
        return {
            "level": Level.OK,
            "committed": False,
            "at": now.isoformat(timespec="seconds"),
            "where": where,
            "view_seq": view.view_seq,
            "read": describe_credential(credential),
            "registry": {
                "card_status": None if card is None else str(card.status),
                "card_class": None if card is None else card.card_class,
                "issue_seq": None if card is None else card.issue_seq,
                "holder_id": None if holder is None else holder.id,
                "holder": None if holder is None else mask_name(holder.name),
                "holder_status": None if holder is None else str(holder.status),
            },
            "decision": describe_decision(decision),
        }

    def camera(self) -> dict[str, Any]:
        """The camera's health and newest frame (on the diag thread: the camera has no queue)."""
        return face_diag.camera_report(self.app.face_parts)

    def face(self, frames: int, show_holder: bool) -> dict[str, Any]:
        """The face pipeline on the newest frames (on the diag thread; see terminal.diag.faces)."""
        return face_diag.face_report(self.app.face_parts, frames=frames, show_holder=show_holder)

    def gate_test(self, seconds: float, peer_uid: int) -> dict[str, Any]:
        """Release the gate once, wait for the passage, read the board; journal an event."""
        flow = self._flow
        if not isinstance(flow, DoorFlow):
            raise DiagError(ErrorCode.NOT_AVAILABLE, "this terminal is a POS: it has no gate")
        seconds = min(max(seconds, 0.5), GATE_TEST_MAX_SECONDS)

        def pulse() -> dict[str, Any]:
            gate, settings = flow.gate, flow.settings
            at = flow.clock.now()
            result: dict[str, Any] = {"seconds": seconds, "direction": settings.direction}
            # A gate that opens without a card is what tamper evidence is for: say who did it.
            try:
                self.app.store.record_event(
                    SecurityEvent("maintenance_open", {"source": "diag", "uid": peer_uid}),
                    at=rfc3339(at),
                    door=settings.door_id,
                )
            except StoreError as exc:
                raise DiagError(
                    ErrorCode.FAILED, f"not opening: the test could not be journalled ({exc})"
                ) from None
            started = time.monotonic()
            try:
                gate.open(settings.direction, seconds)
                result["opened"] = True
                outcome = gate.wait_passage(seconds)
                result["passage"] = str(outcome)
            except DriverError as exc:
                result["opened"] = result.get("opened", False)
                result["error"] = str(exc)
            result["elapsed_s"] = round(time.monotonic() - started, 2)
            status = getattr(gate, "last_status", None)
            reply = status() if callable(status) else None
            result["sensors"] = (
                {
                    k: str(v) if not isinstance(v, bool | int) else v
                    for k, v in asdict(reply).items()
                }
                if reply is not None and is_dataclass(reply) and not isinstance(reply, type)
                else None
            )
            result["health"] = _health(gate.health())
            return result

        result: dict[str, Any] = self.on_loop(pulse, timeout=seconds * 2 + 30)
        logger.warning(
            "diag: gate released for a test by uid %d (%s)", peer_uid, result.get("passage")
        )
        result["level"] = (
            Level.OK if result.get("opened") and result["health"]["ok"] else Level.FAILED
        )
        if result.get("opened") and result.get("passage") != str(PassageOutcome.PASSED):
            result["note"] = "nobody passed: the passage sensor was not exercised"
        if result["sensors"] is None:
            result["sensors_note"] = "this gate driver reports no sensors"
        return result
