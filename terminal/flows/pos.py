"""The POS flow (canteen, shop, barber): amount -> tap -> [PIN | confirm] -> commit -> "paid".

The customer display says "paid" only after the payment is durable. Every tap that reaches a
decision is journalled — allowed, denied, or cancelled at the PIN or confirmation prompt. A
correction is started on the keypad and authorised by a supervisor's tap.

Face pay (the face key, terminal/faces/pos.py) takes the place of the tap: the recognised
holder's current card pays once the customer confirmed the name and amount on the display.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from enum import StrEnum

from drivers.interfaces import (
    AmountEntered,
    Cancelled,
    CardPresented,
    CardReader,
    CardRemoved,
    Confirmed,
    CorrectionRequested,
    Display,
    FacePayRequested,
    Keypad,
    KeypadEvent,
    PinEntered,
    Screen,
    TapIncomplete,
)
from models.cards import Credential, held_key, mask_card_number
from models.correction import CorrectionRequest
from models.decide import decide
from models.decision import Decision
from models.errors import DriverError, StoreError
from models.journal import TransactionDraft
from models.money import Fen, format_yuan
from models.pin import mask_name, verify_pin
from models.pos import PosPolicy, PosRequest, PosView
from models.reasons import Reason, message_en, message_zh
from models.wallet import MONEY_PURSES, Payment, Purse, Service
from terminal.clock import Clock, rfc3339
from terminal.faces import pos as face_pay
from terminal.faces.pos import PosFaces
from terminal.faces.verifier import FaceOutcome, FaceResult
from terminal.store import Charged, Committed, Effect, PinOutcome, Refunded, SecurityEvent, Store

logger = logging.getLogger(__name__)

PURSE_ZH = {
    Purse.CASH: "现金",
    Purse.MEAL_SUBSIDY: "餐补",
    Purse.BARBER_SUBSIDY: "洗理补助",
    Purse.WORK_MEALS: "工作餐",
}


class PosState(StrEnum):
    IDLE = "idle"
    AMOUNT = "amount"  # an amount is waiting for a card
    FACE = "face"  # identifying the customer at the camera
    PIN = "pin"
    CONFIRM = "confirm"
    SUPERVISOR = "supervisor"


@dataclass(frozen=True, slots=True)
class PosSettings:
    merchant_id: str
    service: Service
    policy: PosPolicy = field(default_factory=PosPolicy)
    amount_timeout_s: float = 60.0
    prompt_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class PosOutcome:
    """One journalled payment or correction, after the display was updated."""

    at: datetime
    kind: str
    decision: Decision
    committed: Committed


Listener = Callable[[PosOutcome], None]
ViewLoader = Callable[[datetime], PosView]


class PosFlow:
    def __init__(
        self,
        *,
        settings: PosSettings,
        reader: CardReader,
        keypad: Keypad,
        display: Display,
        store: Store,
        clock: Clock,
        timezone: tzinfo,
        degraded: Callable[[], bool] = lambda: False,
        faces: PosFaces | None = None,
    ) -> None:
        self.settings = settings
        self.reader = reader
        self.keypad = keypad
        self.display = display
        self.store = store
        self.clock = clock
        self.timezone = timezone
        self.degraded = degraded
        self.faces = faces
        self.state = PosState.IDLE
        self.listeners: list[Listener] = []
        self._amount: int | None = None
        self._amount_deadline = 0.0
        self._held: str | None = None

    # --- the loop ------------------------------------------------------------------------------

    def poll(self, timeout: float) -> None:
        """Handle pending keys, then wait up to ``timeout`` for one reader event."""
        while (key := self.keypad.next_event(0)) is not None:
            self._key(key)
        if self._amount is not None and time.monotonic() > self._amount_deadline:
            self._clear_amount("amount timed out")
        try:
            event = self.reader.next_event(timeout)
        except DriverError as exc:
            logger.warning("reader: %s", exc)
            return
        if isinstance(event, CardRemoved):
            self._held = None
        elif isinstance(event, TapIncomplete):
            self._held = None
            self._show("请重新刷卡", "Tap again", tone="error")
        elif isinstance(event, CardPresented):
            # Keys pressed just before the tap belong to it: an amount is what this card pays,
            # a correction means this card is the supervisor's.
            while (key := self.keypad.next_event(0)) is not None:
                if isinstance(key, CorrectionRequested):
                    self._held = held_key(event.credential)
                    self._correct(key, event.credential)
                    return
                self._key(key)
            key_ = held_key(event.credential)
            if key_ != self._held:
                self._held = key_
                self._pay(
                    event.credential,
                    self._views(self.store.pos_view, event.credential.number or ""),
                )

    def _key(self, key: KeypadEvent) -> None:
        if isinstance(key, AmountEntered):
            if not 0 < key.amount <= self.settings.policy.max_amount:
                self._show("金额无效", "Invalid amount", tone="error")
                return
            self._amount = key.amount
            self._amount_deadline = time.monotonic() + self.settings.amount_timeout_s
            self.state = PosState.AMOUNT
            self._show(f"应付 {format_yuan(Fen(key.amount))} 元", "请刷卡 Tap card", tone="prompt")
        elif isinstance(key, Cancelled):
            self._clear_amount("cancelled")
        elif isinstance(key, CorrectionRequested):
            self._correct(key)
        elif isinstance(key, FacePayRequested):
            self._face_pay()

    def _clear_amount(self, why: str) -> None:
        if self._amount is not None:
            logger.info("amount dropped: %s", why)
        self._amount = None
        self.state = PosState.IDLE
        self._show("请输入金额", "Enter amount")

    # --- payments -----------------------------------------------------------------------------

    def _local_now(self) -> datetime:
        return self.clock.now().astimezone(self.timezone)

    def _needs_amount(self, now: datetime) -> bool:
        merchant = self.store.rules().merchant(self.settings.merchant_id, self.settings.service)
        pricing = merchant.pricing_for(merchant.period_at(now))
        return pricing is not None and pricing.mode == "entered" and self._amount is None

    def _views(self, load: Callable[..., PosView], key: str) -> ViewLoader:
        """The view of one card (``Store.pos_view``) or one holder (``pos_view_for_holder``), read
        again after each prompt."""
        s = self.settings
        return lambda now: load(
            key,
            merchant_id=s.merchant_id,
            service=s.service,
            policy=s.policy,
            now=now,
            degraded=self.degraded(),
        )

    def _pay(
        self, credential: Credential, load: ViewLoader, face: FaceResult | None = None
    ) -> None:
        """Decide and commit one payment; a face pays only once the customer confirmed it."""
        now = self._local_now()
        if self._needs_amount(now):
            self._show("请先输入金额", "Enter the amount first", tone="error")
            return
        amount, self._amount = self._amount, None
        pin_ok: bool | None = None
        confirmed = False
        effects: list[Effect] = []
        view = load(now)
        request = PosRequest(credential, amount)
        decision = decide(request, view, now)
        payment = None if face is None else face_pay.would_pay(request, decision, view, now)
        if payment is not None and not self._ask_face_confirm(payment, view):
            decision = _cancelled(decision, "at the face pay confirmation")
        # At most one PIN prompt and one confirmation per tap, then decide again with the answer.
        for _ in range(2):
            if decision.reason is Reason.PIN_REQUIRED and pin_ok is None:
                pin_ok = self._ask_pin(view)
                if pin_ok is None or view.holder is None:
                    break
                effects.append(PinOutcome(view.holder.id, pin_ok, now))
            elif decision.reason is Reason.DUPLICATE_TAP and not confirmed:
                confirmed = self._ask_confirm()
                if not confirmed:
                    break
            else:
                break
            view = load(now)
            decision = decide(PosRequest(credential, amount, pin_ok, confirmed), view, now)
        if decision.reason in (Reason.PIN_REQUIRED, Reason.DUPLICATE_TAP):
            decision = _cancelled(decision, f"at the {decision.reason} prompt")
        self.state = PosState.IDLE
        self._commit_payment(decision, view, now, effects, face)

    def _face_pay(self) -> None:
        if self.faces is None:
            self._show("本机未开通刷脸支付", "Face pay is not available here", tone="error")
            return
        if self._needs_amount(self._local_now()):
            self._show("请先输入金额", "Enter the amount first", tone="error")
            return
        self.state = PosState.FACE
        self._show("请看摄像头", "Look at the camera", tone="prompt")
        result = self.faces.identify()
        self.state = PosState.IDLE if self._amount is None else PosState.AMOUNT
        if result.matched:
            credential = face_pay.credential(result)
            holder = self._views(self.store.pos_view_for_holder, credential.holder_id)
            self._pay(credential, holder, result)
        elif result.outcome is FaceOutcome.NOT_LIVE and result.holder_id is not None:
            self._face_spoof(self.faces, result, result.holder_id)
        else:
            # Nobody was identified, so there is nothing to journal; the amount stays for a card.
            reason = face_pay.not_identified_reason(result)
            self._show(message_zh(reason), message_en(reason), tone="error")

    def _face_spoof(self, faces: PosFaces, result: FaceResult, holder_id: str) -> None:
        now = self._local_now()
        self._amount = None
        self.state = PosState.IDLE
        view = self._views(self.store.pos_view_for_holder, holder_id)(now)
        decision = face_pay.spoof_denial(result, view.card.number if view.card else None)
        committed = self._commit_payment(decision, view, now, [], result)
        if committed is not None:
            faces.keep_evidence(result, committed, now)

    def _commit_payment(
        self,
        decision: Decision,
        view: PosView,
        now: datetime,
        effects: list[Effect],
        face: FaceResult | None = None,
    ) -> Committed | None:
        payment = decision.payment
        if payment is not None and decision.holder_id and decision.card_number:
            subsidised = any(p is not Purse.CASH for p, _ in payment.split)
            effects.append(
                Charged(
                    decision.holder_id,
                    decision.card_number,
                    now,
                    payment.amount,
                    payment.split,
                    subsidised,
                )
            )
        event = None
        if decision.alert is not None:
            detail: dict[str, object] = {"reason": str(decision.reason)}
            if face is not None:
                detail |= face_pay.event_detail(face)
            event = SecurityEvent(str(decision.alert), detail)
        elif decision.reason is Reason.PIN_WRONG and (
            view.pin_failures + 1 >= self.settings.policy.pin_max_failures
        ):
            event = SecurityEvent("pin_locked", {"failures": view.pin_failures + 1})
        draft = self._draft(
            now,
            decision,
            view.view_seq,
            credential="card" if face is None else "face",
            face_score=None if face is None else face_pay.score_milli(face),
        )
        try:
            committed = self.store.commit(draft, event, effects)
        except StoreError as exc:
            logger.error("payment not recorded, nothing charged: %s", exc)
            self._show("系统故障，未扣款", "Not charged: system fault", tone="error")
            return None
        logger.info(
            "payment %s %s",
            "allowed" if decision.allowed else "denied",
            decision.reason,
            extra={
                "seq": committed.seq,
                "credential": draft.credential,
                "card": mask_card_number(decision.card_number or ""),
                "amount": payment.amount if payment else None,
            },
        )
        if payment is not None:
            self._show_paid(decision, view)
        else:
            self._show(message_zh(decision.reason), message_en(decision.reason), tone="error")
        self._tell(PosOutcome(now, draft.kind, decision, committed))
        return committed

    def _draft(
        self,
        now: datetime,
        decision: Decision,
        view_seq: int,
        *,
        kind: str | None = None,
        credential: str = "card",
        face_score: int | None = None,
        corrects: str | None = None,
        authorised_by: str | None = None,
    ) -> TransactionDraft:
        payment = decision.payment
        return TransactionDraft(
            kind=kind or str(self.settings.service),
            at=rfc3339(now),
            mono_ns=self.clock.monotonic_ns(),
            credential=credential,
            decision="allow" if decision.allowed else "deny",
            reason=decision.reason,
            view_seq=view_seq,
            card=decision.card_number,
            holder_id=decision.holder_id,
            amount=payment.amount if payment else None,
            split=tuple((str(p), a) for p, a in payment.split) if payment else (),
            face_score=face_score,
            corrects=corrects,
            authorised_by=authorised_by,
        )

    def _show_paid(self, decision: Decision, view: PosView) -> None:
        payment = decision.payment
        assert payment is not None
        today = self._local_now().date()
        before = sum(p.available(today) for p in view.purses if p.purse in MONEY_PURSES)
        name = mask_name(view.holder.name) if view.holder else ""
        self._show(
            "支付成功 Paid",
            name,
            f"金额 {_payment_text(payment)}",
            f"余额 {format_yuan(Fen(before - payment.amount))} 元",
            tone="ok",
        )

    # --- prompts ------------------------------------------------------------------------------

    def _wait_key(self, wanted: tuple[type, ...]) -> KeypadEvent | None:
        deadline = time.monotonic() + self.settings.prompt_timeout_s
        while (left := deadline - time.monotonic()) > 0:
            key = self.keypad.next_event(min(left, 0.2))
            if isinstance(key, wanted):
                return key
        return None

    def _ask_pin(self, view: PosView) -> bool | None:
        """True/False for a PIN entered right/wrong; None when cancelled or timed out."""
        self.state = PosState.PIN
        self._show("请输入密码", "Enter PIN", tone="prompt")
        key = self._wait_key((PinEntered, Cancelled))
        if not isinstance(key, PinEntered):
            return None
        return verify_pin(key.pin, view.holder.pin_hash if view.holder else None)

    def _ask_confirm(self) -> bool:
        self.state = PosState.CONFIRM
        self._show("刚刚已扣款，确认再次消费？", "Just charged: OK to pay again", tone="prompt")
        return isinstance(self._wait_key((Confirmed, Cancelled)), Confirmed)

    def _ask_face_confirm(self, payment: Payment, view: PosView) -> bool:
        # 1:N can name the wrong person: they must see whose account pays before anything moves.
        self.state = PosState.CONFIRM
        name = mask_name(view.holder.name) if view.holder else ""
        self._show("确认支付？", name, f"金额 {_payment_text(payment)}", "OK to pay", tone="prompt")
        return isinstance(self._wait_key((Confirmed, Cancelled)), Confirmed)

    # --- corrections --------------------------------------------------------------------------

    def _wait_card(self) -> Credential | None:
        deadline = time.monotonic() + self.settings.prompt_timeout_s
        while (left := deadline - time.monotonic()) > 0:
            event = self.reader.next_event(min(left, 0.2))
            if isinstance(event, CardPresented):
                self._held = held_key(event.credential)
                return event.credential
            if isinstance(event, CardRemoved):
                self._held = None
        return None

    def _correct(self, request: CorrectionRequested, supervisor: Credential | None = None) -> None:
        tx_id = self.store.last_payment_id() if request.tx == "last" else request.tx
        self.state = PosState.SUPERVISOR
        if supervisor is None:
            self._show("纠错：请主管刷卡", "Correction: supervisor card", tone="prompt")
            supervisor = self._wait_card()
        self.state = PosState.IDLE
        if supervisor is None or tx_id is None:
            self._show("纠错已取消", "Correction cancelled", tone="error")
            return
        now = self._local_now()
        view = self.store.correction_view(
            supervisor.number or "",
            tx_id,
            merchant_id=self.settings.merchant_id,
            service=self.settings.service,
        )
        decision = decide(CorrectionRequest(supervisor, tx_id, request.amount), view, now)
        effects: list[Effect] = []
        if decision.payment is not None and view.original is not None:
            effects.append(
                Refunded(
                    tx_id,
                    view.original.holder_id,
                    now,
                    decision.payment.amount,
                    decision.payment.split,
                )
            )
        authorised = view.supervisor_holder.id if view.supervisor_holder else None
        draft = self._draft(
            now,
            decision,
            view.view_seq,
            kind="correction",
            corrects=tx_id,
            authorised_by=authorised,
        )
        try:
            committed = self.store.commit(draft, None, effects)
        except StoreError as exc:
            logger.error("correction not recorded: %s", exc)
            self._show("系统故障", "System fault", tone="error")
            return
        if decision.allowed and decision.payment is not None:
            self._show(
                "纠错完成", f"退回 {format_yuan(Fen(decision.payment.amount))} 元", tone="ok"
            )
        else:
            self._show(message_zh(decision.reason), message_en(decision.reason), tone="error")
        self._tell(PosOutcome(now, "correction", decision, committed))

    # --- plumbing -----------------------------------------------------------------------------

    def _show(self, headline: str, *lines: str, tone: str = "info") -> None:
        try:
            self.display.show(Screen(headline, tuple(lines), tone))
        except DriverError as exc:
            logger.warning("display: %s", exc)

    def _tell(self, outcome: PosOutcome) -> None:
        for listener in self.listeners:
            try:
                listener(outcome)
            except Exception:
                logger.exception("flow listener failed")


def _cancelled(decision: Decision, where: str) -> Decision:
    return Decision.deny(
        Reason.CANCELLED_BY_USER,
        holder_id=decision.holder_id,
        card_number=decision.card_number,
        detail=where,
    )


def _payment_text(payment: Payment) -> str:
    parts = " + ".join(
        f"{PURSE_ZH[p]} {format_yuan(Fen(a)) if p is not Purse.WORK_MEALS else a}"
        for p, a in payment.split
    )
    return f"{format_yuan(Fen(payment.amount))} 元 ({parts})"
