"""What only the running daemon can tell or do: device health, recent activity, the dry-run tap,
the gate test, and the camera and face checks (:mod:`terminal.diag.faces`).

Diag's hooks (:attr:`LiveTerminal.hooks`) are given to the tap loop when the App is built, and
the live terminal is bound to the App once it exists; detaching turns the hooks off and leaves the
loop as it was built. Everything that must not race the flow goes through the tap loop: a dry
run arms diag's intercept, so the next card presentation is handed to diag instead of the flow;
it is then run through a fresh flow of the same kind and settings with a loop that writes nothing
(:mod:`terminal.dryrun`): same rules, same view, never committed, never opening the gate. The
gate test is journalled on the loop and pulses the gate on the loop's gate worker, in turn with
the openings of real taps.
"""

import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from drivers.interfaces import CardPresented, Gate, Health, PassageOutcome, Screen
from drivers.qr.interface import QrPresented
from models.cards import CardFault, Credential, FaceCredential, Genuineness, PresentedCard
from models.decision import Decision
from models.door import DoorMode
from models.errors import DriverError, StoreError
from models.pin import mask_name
from models.qr import QrCredential, QrFault
from models.reasons import message_en, message_zh
from terminal.clock import rfc3339
from terminal.diag import faces as face_diag
from terminal.diag import qr as qr_diag
from terminal.diag.facts import mask_card
from terminal.diag.protocol import GATE_TEST_MAX_SECONDS, DiagError, ErrorCode, Level
from terminal.diag.redact import mask_digits
from terminal.dryrun import DryRun, DryRunner
from terminal.flows.door import DoorFlow, FlowNotice, TapOutcome
from terminal.flows.pos import PosFlow, PosOutcome
from terminal.loop import LoopHooks, TapLoop
from terminal.store import SecurityEvent

if TYPE_CHECKING:  # app.py may import diag to wire it; the type is all that is needed here
    from terminal.app import App

logger = logging.getLogger(__name__)

ACTIVITY = 50  # recent taps and notices kept for `watch`
GATE_TESTS_MAX, GATE_TESTS_PER_S = 5, 60.0
LOOP_WAIT_SECONDS = 10.0  # the tap loop finishes any presentation well within this


def _health(health: Health) -> dict[str, Any]:
    found = {"ok": health.ok, "state": health.state, "detail": mask_digits(health.detail)}
    return found | ({"warning": health.warning} if health.warning else {})


def describe_credential(credential: Credential) -> dict[str, Any]:
    """What the reader decoded, with the number masked."""
    if isinstance(credential, FaceCredential):
        return {"face": True, "score_milli": credential.score_milli, "live": credential.live}
    if isinstance(credential, QrCredential | QrFault):
        return qr_diag.describe_credential(credential)
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
        "valid_from": credential.valid_from.isoformat() if credential.valid_from else None,
        "valid_until": credential.valid_until.isoformat() if credential.valid_until else None,
        "class_code": credential.class_code,
        "issuer_id": credential.issuer_id,
    }


def describe_decision(decision: Decision) -> dict[str, Any]:
    payment = decision.payment
    return {
        "allowed": decision.allowed,
        "final": decision.final,
        "needs": None if decision.need is None else str(decision.need),
        "credential": decision.credential,
        "face_score": decision.face_score,
        "reason": str(decision.reason),
        "message_zh": message_zh(decision.reason),
        "message_en": message_en(decision.reason),
        "alert": None if decision.alert is None else str(decision.alert),
        "detail": mask_digits(decision.detail),
        "amount": None if payment is None else payment.amount,
        "split": [] if payment is None else [[str(p), a] for p, a in payment.split],
    }


class LiveTerminal:
    """Diag's handle on a running :class:`~terminal.app.App`.

    Made before the App, whose tap loop is built with :attr:`hooks`; :meth:`bind` then ties it
    to that App, and :meth:`detach` turns the hooks off (the loop keeps them, doing nothing).
    Bound to an App built without them, it still reports, but cannot take a card.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.started_mono = time.monotonic()
        self.started_at = datetime.now(UTC)
        self._lock = threading.Lock()
        self._app: App | None = None
        self._on = threading.Event()  # bound and not detached: the hooks act
        self._dry_run: Future[Credential] | None = None
        self._code_run: Future[QrPresented] | None = None
        self._gate_tests: deque[float] = deque()  # monotonic times of the recent gate tests
        self._activity: deque[dict[str, Any]] = deque(maxlen=ACTIVITY)
        self.hooks = LoopHooks(intercept=self._offer, screen=self._on_screen, told=self._on_told)

    def bind(self, app: "App") -> None:
        self._app = app
        # Bound right before the tap loop starts, so this is the daemon's uptime to a few ms.
        self.started_mono = time.monotonic()
        self.started_at = datetime.now(UTC)
        self._on.set()

    def detach(self) -> None:
        self._on.clear()
        with self._lock:
            self._dry_run = None  # a waiting dry run times out; no card is taken for it now
            self._code_run = None

    @property
    def app(self) -> "App":
        if self._app is None:
            raise DiagError(ErrorCode.NOT_AVAILABLE, "diag is not bound to a running terminal")
        return self._app

    @property
    def _loop(self) -> TapLoop:
        return self.app.loop

    @property
    def _flow(self) -> DoorFlow | PosFlow:
        return self.app.flow

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
        if self.app.gate is not None:
            found["gate"] = _health(self.app.gate.health())
        if self.app.qr_reader is not None:
            found["qr_reader"] = _health(self.app.qr_reader.health())
        return found

    def activity(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._activity)

    def note(self, entry: dict[str, Any]) -> None:
        entry.setdefault("at", rfc3339(datetime.now(UTC)))
        with self._lock:
            self._activity.append(entry)

    def _on_told(self, message: object) -> None:
        """On the loop: what the flow tells its listeners, for ``watch``."""
        if not self._on.is_set():
            return
        if isinstance(message, PosOutcome):
            self._on_payment(message)
        elif isinstance(message, TapOutcome | FlowNotice):
            self._on_door(message)

    def _on_screen(self, screen: Screen) -> None:
        """On the loop: what the till's display is about to say (``watch`` shows "system fault"
        et al.); only headline and tone, as the lines may carry a (masked) name and a balance."""
        if self._on.is_set():
            self.note({"what": "screen", "headline": screen.headline, "tone": screen.tone})

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

    def _offer(self, presented: CardPresented | QrPresented) -> bool:
        """On the loop: take the card for a waiting dry run; False (the flow has it) otherwise."""
        if not self._on.is_set():
            return False
        if isinstance(presented, QrPresented):
            return self._offer_code(presented)
        with self._lock:
            waiting, self._dry_run = self._dry_run, None
        if waiting is None or not waiting.set_running_or_notify_cancel():
            return False
        waiting.set_result(presented.credential)
        logger.info("diag: card taken for a dry run, not decided by the flow")
        return True

    def _offer_code(self, presented: QrPresented) -> bool:
        with self._lock:
            waiting, self._code_run = self._code_run, None
        if waiting is None or not waiting.set_running_or_notify_cancel():
            return False
        waiting.set_result(presented)
        logger.info("diag: code taken for a dry run, not decided by the flow")
        return True

    def on_loop(self, job: Any, timeout: float) -> Any:
        """Run ``job`` on the tap loop between presentations and return its result."""
        try:
            return self._loop.call(job, timeout)
        except TimeoutError:
            raise DiagError(ErrorCode.TIMEOUT, "the tap loop did not get to it in time") from None

    # -- commands -------------------------------------------------------------------------------

    def _runner(self) -> DryRunner:
        loop = self._loop
        return DryRunner(self._flow, clock=loop.clock, timezone=loop.timezone, faces=loop.faces)

    def dry_run(self, timeout: float, amount: int | None) -> dict[str, Any]:
        """Wait for the next tap and say what it would get; nothing is committed or opened."""
        if self.app.loop.hooks is not self.hooks:
            raise DiagError(
                ErrorCode.NOT_AVAILABLE,
                "this terminal was built without diag's hooks: no card can be taken for a dry "
                "run (judge a card by its number instead)",
            )
        waiting: Future[Credential] = Future()
        with self._lock:
            if self._dry_run is not None:
                raise DiagError(ErrorCode.BUSY, "another card dry run is already waiting")
            self._dry_run = waiting
        try:
            credential = waiting.result(timeout)
        except TimeoutError:
            with self._lock:
                if self._dry_run is waiting:
                    self._dry_run = None
            if not waiting.cancel() and waiting.done():
                credential = waiting.result()
            else:
                raise DiagError(
                    ErrorCode.TIMEOUT, f"no card was tapped within {timeout:g} s"
                ) from None
        return self._report(credential, self._runner().run(credential, amount))

    def judge_number(self, number: str, amount: int | None) -> dict[str, Any]:
        """The decision a card with ``number`` would get, without a tap: nothing read from a
        chip, so the genuine-card check and what the card itself says are not part of it."""
        credential = PresentedCard(number=number, genuine=Genuineness.UNCHECKED)
        result = self._report(credential, self._runner().run(credential, amount))
        result["note"] = "judged by number: no chip was read or authenticated"
        return result

    def judge_code(self, text: str, amount: int | None, source: str = "diag") -> dict[str, Any]:
        """The decision a code would get, verified and judged as if shown now; nothing is
        recorded, so its nonce is not spent."""
        presented = QrPresented(text, source)
        run = self._runner().run(presented, amount)
        judged = run.credential if run.credential is not None else qr_diag.unjudged(text)
        result = self._report(judged, run)
        result["code"] = qr_diag.describe_code(
            text, run.credential, self._loop.now().local, self.app.store
        )
        return result

    def code_dry_run(self, timeout: float, amount: int | None) -> dict[str, Any]:
        """Wait for the next code shown to this terminal's QR reader and judge it."""
        if self.app.loop.qr_reader is None:
            raise DiagError(
                ErrorCode.NOT_AVAILABLE,
                "this terminal has no QR reader ([qr] enabled = false); judge a code with "
                "--text or --image instead",
            )
        if self.app.loop.hooks is not self.hooks:
            raise DiagError(ErrorCode.NOT_AVAILABLE, "this terminal was built without diag's hooks")
        waiting: Future[QrPresented] = Future()
        with self._lock:
            if self._code_run is not None:
                raise DiagError(ErrorCode.BUSY, "another code dry run is already waiting")
            self._code_run = waiting
        try:
            presented = waiting.result(timeout)
        except TimeoutError:
            with self._lock:
                if self._code_run is waiting:
                    self._code_run = None
            if not waiting.cancel() and waiting.done():
                presented = waiting.result()
            else:
                raise DiagError(
                    ErrorCode.TIMEOUT, f"no code was shown within {timeout:g} s"
                ) from None
        return self.judge_code(presented.text, amount, presented.source)

    def _report(self, credential: Credential, run: DryRun) -> dict[str, Any]:
        flow = self._flow
        if isinstance(flow, DoorFlow):
            settings = flow.settings
            where: dict[str, Any] = {
                "door": settings.door_id,
                "direction": settings.direction,
                "mode": str(flow.mode),
            }
        else:
            where = {"merchant": flow.settings.merchant_id, "service": str(flow.settings.service)}
        registry = dict(run.registry)
        name = registry.pop("holder_name", None)
        registry["holder"] = None if name is None else mask_name(name)
        decision = run.decision
        return {
            "level": Level.OK,
            "committed": False,
            "at": self._loop.now().local.isoformat(timespec="seconds"),
            "where": where,
            "view_seq": run.view_seq,
            "read": describe_credential(credential),
            "registry": registry,
            "decision": None if decision is None else describe_decision(decision),
            "why": [mask_digits(fact) for fact in run.facts],
            "would_record": [
                {
                    "kind": d.kind,
                    "decision": d.decision,
                    "reason": str(d.reason),
                    "credential": d.credential,
                }
                for d in run.records
            ],
            "would_raise": [event.type for event in run.events],
            "gate": run.gate,
            "face": None
            if run.face is None
            else {
                "outcome": str(run.face.outcome),
                "score": run.face.score,
                "threshold": run.face.threshold,
            },
            "screens": [screen.headline for screen in run.screens],
        }

    def _take_gate_test(self) -> None:
        """A few tests in a row are a technician; a loop is a gate held open by a script."""
        now = time.monotonic()
        with self._lock:
            while self._gate_tests and now - self._gate_tests[0] > GATE_TESTS_PER_S:
                self._gate_tests.popleft()
            if len(self._gate_tests) >= GATE_TESTS_MAX:
                wait = GATE_TESTS_PER_S - (now - self._gate_tests[0])
                raise DiagError(
                    ErrorCode.BUSY,
                    f"{GATE_TESTS_MAX} gate tests in {GATE_TESTS_PER_S:.0f} s already: try again "
                    f"in {wait:.0f} s",
                )
            self._gate_tests.append(now)

    def camera(self) -> dict[str, Any]:
        """The camera's health and newest frame (on the diag thread: the camera has no queue)."""
        return face_diag.camera_report(self.app.face_parts)

    def face(self, frames: int, show_holder: bool) -> dict[str, Any]:
        """The face pipeline on the newest frames (on the diag thread; see terminal.diag.faces)."""
        return face_diag.face_report(self.app.face_parts, frames=frames, show_holder=show_holder)

    def gate_test(self, seconds: float, peer_uid: int) -> dict[str, Any]:
        """Release the gate once, wait for the passage, read the board; journal an event."""
        gate, flow = self.app.gate, self._flow
        if gate is None or not isinstance(flow, DoorFlow):
            raise DiagError(ErrorCode.NOT_AVAILABLE, "this terminal is a POS: it has no gate")
        seconds = min(max(seconds, 0.5), GATE_TEST_MAX_SECONDS)
        door = flow.settings.door_id
        if flow.mode is DoorMode.LOCKED:
            raise DiagError(
                ErrorCode.DENIED,
                "the door is in lockdown (HQ's set_mode locked): a test would open it; HQ must "
                "lift the lockdown first",
            )
        self._take_gate_test()

        def journal() -> None:
            # A gate that opens without a card is what tamper evidence is for: say who did it.
            try:
                self.app.store.record_event(
                    SecurityEvent("maintenance_open", {"source": "diag", "uid": peer_uid}),
                    at=rfc3339(self._loop.clock.now()),
                    door=door,
                )
            except StoreError as exc:
                raise DiagError(
                    ErrorCode.FAILED, f"not opening: the test could not be journalled ({exc})"
                ) from None

        self.on_loop(journal, LOOP_WAIT_SECONDS)
        result = self._loop.on_gate(lambda: _pulse(gate, flow.settings.direction, seconds))
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


def _pulse(gate: Gate, direction: str | None, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {"seconds": seconds, "direction": direction}
    started = time.monotonic()
    try:
        gate.open(direction, seconds)
        result["opened"] = True
        result["passage"] = str(gate.wait_passage(seconds))
    except DriverError as exc:
        result["opened"] = result.get("opened", False)
        result["error"] = str(exc)
    result["elapsed_s"] = round(time.monotonic() - started, 2)
    status = getattr(gate, "last_status", None)
    reply = status() if callable(status) else None
    result["sensors"] = (
        {k: str(v) if not isinstance(v, bool | int) else v for k, v in asdict(reply).items()}
        if reply is not None and is_dataclass(reply) and not isinstance(reply, type)
        else None
    )
    result["health"] = _health(gate.health())
    return result
