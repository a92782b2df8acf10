"""The POS flow (canteen, shop, barber): amount -> tap -> [PIN | confirm] -> commit -> "paid".

The customer display says "paid" only after the payment is durable. Every tap that reaches a
decision is journalled — allowed, denied, or cancelled at the PIN or confirmation prompt. A
correction is started on the keypad and authorised by a supervisor's tap.
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
from models.wallet import MONEY_PURSES, Purse, Service
from terminal.clock import Clock, rfc3339
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
    ) -> None:
        self.settings = settings
        self.reader = reader
        self.keypad = keypad
        self.display = display
        self.store = store
        self.clock = clock
        self.timezone = timezone
        self.degraded = degraded
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
                self._pay(event.credential)

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

    def _view(self, credential: Credential, now: datetime) -> PosView:
        return self.store.pos_view(
            credential.number or "",
            merchant_id=self.settings.merchant_id,
            service=self.settings.service,
            policy=self.settings.policy,
            now=now,
            degraded=self.degraded(),
        )

    def _pay(self, credential: Credential) -> None:
        now = self._local_now()
        if self._needs_amount(now):
            self._show("请先输入金额", "Enter the amount first", tone="error")
            return
        amount, self._amount = self._amount, None
        pin_ok: bool | None = None
        confirmed = False
        effects: list[Effect] = []
        view = self._view(credential, now)
        decision = decide(PosRequest(credential, amount), view, now)
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
            view = self._view(credential, now)
            decision = decide(PosRequest(credential, amount, pin_ok, confirmed), view, now)
        if decision.reason in (Reason.PIN_REQUIRED, Reason.DUPLICATE_TAP):
            decision = Decision.deny(
                Reason.CANCELLED_BY_USER,
                holder_id=decision.holder_id,
                card_number=decision.card_number,
                detail=f"at the {decision.reason} prompt",
            )
        self.state = PosState.IDLE
        self._commit_payment(decision, view, now, effects)

    def _commit_payment(
        self, decision: Decision, view: PosView, now: datetime, effects: list[Effect]
    ) -> None:
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
            event = SecurityEvent(str(decision.alert), {"reason": str(decision.reason)})
        elif decision.reason is Reason.PIN_WRONG and (
            view.pin_failures + 1 >= self.settings.policy.pin_max_failures
        ):
            event = SecurityEvent("pin_locked", {"failures": view.pin_failures + 1})
        draft = self._draft(now, decision, view.view_seq)
        try:
            committed = self.store.commit(draft, event, effects)
        except StoreError as exc:
            logger.error("payment not recorded, nothing charged: %s", exc)
            self._show("系统故障，未扣款", "Not charged: system fault", tone="error")
            return
        logger.info(
            "payment %s %s",
            "allowed" if decision.allowed else "denied",
            decision.reason,
            extra={
                "seq": committed.seq,
                "card": mask_card_number(decision.card_number or ""),
                "amount": payment.amount if payment else None,
            },
        )
        if payment is not None:
            self._show_paid(decision, view)
        else:
            self._show(message_zh(decision.reason), message_en(decision.reason), tone="error")
        self._tell(PosOutcome(now, draft.kind, decision, committed))

    def _draft(
        self, now: datetime, decision: Decision, view_seq: int, **extra: str | None
    ) -> TransactionDraft:
        payment = decision.payment
        return TransactionDraft(
            kind=extra.get("kind") or str(self.settings.service),
            at=rfc3339(now),
            mono_ns=self.clock.monotonic_ns(),
            credential="card",
            decision="allow" if decision.allowed else "deny",
            reason=decision.reason,
            view_seq=view_seq,
            card=decision.card_number,
            holder_id=decision.holder_id,
            amount=payment.amount if payment else None,
            split=tuple((str(p), a) for p, a in payment.split) if payment else (),
            corrects=extra.get("corrects"),
            authorised_by=extra.get("authorised_by"),
        )

    def _show_paid(self, decision: Decision, view: PosView) -> None:
        payment = decision.payment
        assert payment is not None
        today = self._local_now().date()
        before = sum(p.available(today) for p in view.purses if p.purse in MONEY_PURSES)
        parts = " + ".join(
            f"{PURSE_ZH[p]} {format_yuan(Fen(a)) if p is not Purse.WORK_MEALS else a}"
            for p, a in payment.split
        )
        name = mask_name(view.holder.name) if view.holder else ""
        self._show(
            "支付成功 Paid",
            name,
            f"金额 {format_yuan(Fen(payment.amount))} 元 ({parts})",
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
