"""The POS flow (canteen, shop, barber): amount -> tap -> [PIN | confirm] -> commit -> "paid".

A state machine like the door flow: ``step(event, now) -> commands``; prompts are states with a
deadline, never a wait. The customer display says "paid" only after the loop reports the payment
durable. Every tap that reaches a decision is journalled — allowed, denied, or cancelled at a
prompt. What to ask comes from ``decide()`` (:class:`~models.decision.Need`); the flow shows the
prompt, takes the answer and asks ``decide()`` again. A correction is started on the keypad and
authorised by a supervisor's tap.

Face pay (the face key) takes the place of the tap: the camera names a holder, and the payment is
decided for that holder exactly as for a card, asking the customer to confirm first.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from drivers.interfaces import (
    AmountEntered,
    Cancelled,
    CardPresented,
    CardRemoved,
    Confirmed,
    CorrectionRequested,
    FacePayRequested,
    PinEntered,
    Screen,
    TapIncomplete,
)
from drivers.qr.interface import QrPresented, QrRemoved
from models.cards import Credential, FaceCredential, held_key, mask_card_number
from models.correction import CorrectionRequest
from models.credential import SiteCards
from models.decide import decide
from models.decision import Decision, Need
from models.face import FaceOutcome, not_identified_reason
from models.money import Fen, format_yuan
from models.pin import PinKey, check_pin, mask_name
from models.pos import PosPolicy, PosRequest, PosView, amount_needed
from models.qr import DEFAULT_SKEW_S, QrCredential
from models.reasons import message_en, message_zh
from models.wallet import MONEY_PURSES, Payment, Purse, Service
from terminal.faces.verifier import FaceResult
from terminal.flows import qr, record
from terminal.flows.steps import (
    Command,
    Deferred,
    FaceChecked,
    FlowEvent,
    IdentifyFace,
    Judged,
    KeepStill,
    Moment,
    NotRecorded,
    Recorded,
    Show,
    Tell,
    Tick,
)
from terminal.store import Committed, Store

logger = logging.getLogger(__name__)

PURSE_ZH = {
    Purse.CASH: "现金",
    Purse.MEAL_SUBSIDY: "餐补",
    Purse.BARBER_SUBSIDY: "洗理补助",
    Purse.WORK_MEALS: "工作餐",
}
GRACE_SECONDS = 5.0  # a face check silent this long past its time is given up


class PosState(StrEnum):
    IDLE = "idle"
    AMOUNT = "amount"  # an amount is waiting for a card
    FACE = "face"  # identifying the customer at the camera
    PIN = "pin"
    CONFIRM = "confirm"  # pay again after a duplicate tap, or face pay's name and amount
    SUPERVISOR = "supervisor"  # a correction waits for the supervisor's card
    RECORDING = "recording"


@dataclass(frozen=True, slots=True)
class PosSettings:
    merchant_id: str
    service: Service
    policy: PosPolicy = field(default_factory=PosPolicy)
    amount_timeout_s: float = 60.0
    prompt_timeout_s: float = 30.0
    face_seconds: float = 5.0  # how long face pay may look for the customer
    site: SiteCards = field(default_factory=SiteCards)
    qr_skew_seconds: int = DEFAULT_SKEW_S  # how far phone and terminal clocks may disagree


@dataclass(frozen=True, slots=True)
class PosOutcome:
    """One journalled payment or correction, after the display was updated."""

    at: datetime
    kind: str
    decision: Decision
    committed: Committed


Listener = Callable[[PosOutcome], None]
ViewLoader = Callable[[datetime], PosView]

_PROMPT_STATES = {
    Need.PIN: PosState.PIN,
    Need.DUPLICATE_CONFIRM: PosState.CONFIRM,
    Need.PAY_CONFIRM: PosState.CONFIRM,
}


@dataclass(slots=True)
class _Sale:
    """One payment in progress: the request with the answers so far, and the view it met."""

    request: PosRequest
    load: ViewLoader
    view: PosView
    at: datetime
    face: FaceResult | None = None
    decision: Decision | None = None
    deadline: float = 0.0


@dataclass(frozen=True, slots=True)
class _Recording:
    """A final decision whose commit was asked for: what to show and tell once it is durable."""

    decision: Decision
    kind: str
    at: datetime
    sale: _Sale | None  # None for a correction


class PosFlow:
    """``store`` is read for views only; the loop commits what the flow asks it to."""

    def __init__(
        self,
        *,
        settings: PosSettings,
        store: Store,
        degraded: Callable[[], bool] = lambda: False,
        face_pay: bool = False,
        pin_key: Callable[[], PinKey | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.degraded = degraded
        self.face_pay = face_pay
        self.pin_key = pin_key  # what sealed PIN hashes are checked with (docs/privacy.md)
        self.state = PosState.IDLE
        self.listeners: list[Listener] = []
        self._amount: int | None = None
        self._amount_deadline = 0.0
        self._held: str | None = None
        self._sale: _Sale | None = None
        self._recording: _Recording | None = None
        self._correction: tuple[str, int] | None = None  # tx id, amount: waiting for a card
        self._deadline = 0.0  # of the face check or the supervisor's card
        self._ticket = 0
        self._deferred = Deferred()
        self._codes = qr.QrCheck(store, settings.qr_skew_seconds)
        self.last: Judged | None = None

    # --- what the loop asks -------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        return self.state in (PosState.IDLE, PosState.AMOUNT)

    def take_deferred(self) -> FlowEvent | None:
        return self._deferred.take() if self.idle else None

    def deadline(self) -> float | None:
        if self._sale is not None and self._sale.deadline:
            return self._sale.deadline
        if self.state in (PosState.FACE, PosState.SUPERVISOR):
            return self._deadline
        return self._amount_deadline if self._amount is not None else None

    def views(self, credential: Credential) -> ViewLoader:
        """The view of the card (or of a recognised face's holder), read again after a prompt."""
        s = self.settings
        load: Callable[..., PosView] = self.store.pos_view
        key = credential.number or ""
        if isinstance(credential, FaceCredential | QrCredential):
            load, key = self.store.pos_view_for_holder, credential.holder_id
        return lambda now: load(
            key,
            merchant_id=s.merchant_id,
            service=s.service,
            policy=s.policy,
            now=now,
            degraded=self.degraded(),
        )

    # --- events -------------------------------------------------------------------------------

    def step(self, event: FlowEvent, now: Moment) -> list[Command]:
        if isinstance(event, Tick):
            return self._tick(now)
        if isinstance(event, Recorded | NotRecorded):
            return self._recorded(event, now)
        if isinstance(event, FaceChecked):
            return self._face_checked(event, now)
        if self.state in (PosState.PIN, PosState.CONFIRM):
            return self._answer(event, now)
        if self.state is PosState.SUPERVISOR:
            return self._supervisor(event, now)
        if not self.idle:
            self._defer(event)
            return []
        if isinstance(event, AmountEntered):
            return self._amount_entered(event.amount, now)
        if isinstance(event, Cancelled):
            return self._clear_amount("cancelled")
        if isinstance(event, CorrectionRequested):
            return self._start_correction(event, now)
        if isinstance(event, FacePayRequested):
            return self._start_face_pay(now)
        if isinstance(event, CardRemoved | QrRemoved):
            self._held = None
        elif isinstance(event, QrPresented):
            # Held is checked on the text, before verifying: see the door flow.
            if qr.held_key(event.text) != self._held:
                self._held = qr.held_key(event.text)
                return self._start_sale(self._codes.credential(event.text, now.local), now)
        elif isinstance(event, TapIncomplete):
            self._held = None
            return [_show("请重新刷卡", "Tap again", tone="error")]
        elif isinstance(event, CardPresented):
            key = held_key(event.credential)
            if key != self._held:
                self._held = key
                return self._start_sale(event.credential, now)
        return []

    def _defer(self, event: FlowEvent) -> None:
        if isinstance(event, CardPresented | CardRemoved | TapIncomplete | QrPresented | QrRemoved):
            if not self._deferred.add(event):
                logger.warning("till busy: a reader event was dropped")
        else:
            logger.info("key %s ignored while %s", type(event).__name__, self.state)

    def _amount_entered(self, amount: int, now: Moment) -> list[Command]:
        if not self.settings.policy.accepts_amount(amount):
            return [_show("金额无效", "Invalid amount", tone="error")]
        self._amount = amount
        self._amount_deadline = now.mono + self.settings.amount_timeout_s
        self.state = PosState.AMOUNT
        return [_show(f"应付 {format_yuan(Fen(amount))} 元", "请刷卡 Tap card", tone="prompt")]

    def _clear_amount(self, why: str) -> list[Command]:
        if self._amount is not None:
            logger.info("amount dropped: %s", why)
        self._amount = None
        self.state = PosState.IDLE
        return [_show("请输入金额", "Enter amount")]

    def _tick(self, now: Moment) -> list[Command]:
        sale = self._sale
        if sale is not None and sale.deadline and now.mono >= sale.deadline:
            assert sale.decision is not None and sale.decision.need is not None
            logger.info("prompt %s timed out", sale.decision.need)
            return self._decline(sale, now)
        if self.state is PosState.FACE and now.mono >= self._deadline:
            logger.error("the face check did not answer in time")
            return self._face_checked(
                FaceChecked(self._ticket, FaceResult(FaceOutcome.CAMERA_FAULT)), now
            )
        if self.state is PosState.SUPERVISOR and now.mono >= self._deadline:
            return self._cancel_correction()
        if self.state is PosState.AMOUNT and now.mono >= self._amount_deadline:
            return self._clear_amount("amount timed out")
        return []

    # --- payments -----------------------------------------------------------------------------

    def _start_sale(
        self, credential: Credential, now: Moment, face: FaceResult | None = None
    ) -> list[Command]:
        load = self.views(credential)
        view = load(now.local)
        request = PosRequest(credential, self._amount, site=self.settings.site)
        decision = decide(request, view, now.local)
        self.last = Judged(request, view, decision, now.local)
        if decision.need is Need.AMOUNT:
            # Not a decision: the cashier types the amount and the customer taps again.
            return [_show(message_zh(decision.reason), message_en(decision.reason), tone="error")]
        self._amount = None
        sale = _Sale(request, load, view, now.local, face)
        return self._decided(sale, decision, now)

    def _decided(self, sale: _Sale, decision: Decision, now: Moment) -> list[Command]:
        sale.decision = decision
        need = decision.need
        if need is None:
            return self._record(sale, decision, now)
        self._sale = sale
        self.state = _PROMPT_STATES[need]
        sale.deadline = now.mono + self.settings.prompt_timeout_s
        if need is Need.PIN:
            return [_show("请输入密码", "Enter PIN", tone="prompt")]
        if need is Need.DUPLICATE_CONFIRM:
            return [
                _show("刚刚已扣款，确认再次消费？", "Just charged: OK to pay again", tone="prompt")
            ]
        # Face pay: whoever 1:N took the customer for, they see whose account pays first.
        holder = sale.view.holder
        payment = decision.payment
        assert payment is not None
        name = mask_name(holder.name) if holder else ""
        return [
            _show("确认支付？", name, f"金额 {_payment_text(payment)}", "OK to pay", tone="prompt")
        ]

    def _answer(self, event: FlowEvent, now: Moment) -> list[Command]:
        sale = self._sale
        assert sale is not None and sale.decision is not None
        need, request = sale.decision.need, sale.request
        if isinstance(event, Cancelled):
            return self._decline(sale, now)
        if need is Need.PIN and isinstance(event, PinEntered):
            holder = sale.view.holder
            pin_ok = check_pin(event.pin, holder.pin_hash if holder else None, self.pin_key())
            if pin_ok is None:
                # Sealed, and the key store has not answered since start: not a wrong PIN, so
                # nothing counts against the holder; the sale does not go through.
                logger.warning("a PIN could not be checked: no PIN key from the key store yet")
                return self._decline(sale, now)
            return self._ask_again(sale, replace(request, pin_ok=pin_ok), now)
        if need is Need.DUPLICATE_CONFIRM and isinstance(event, Confirmed):
            return self._ask_again(sale, replace(request, confirmed_duplicate=True), now)
        if need is Need.PAY_CONFIRM and isinstance(event, Confirmed):
            return self._ask_again(sale, replace(request, pay_confirmed=True), now)
        self._defer(event)
        return []

    def _decline(self, sale: _Sale, now: Moment) -> list[Command]:
        assert sale.decision is not None
        return self._ask_again(sale, replace(sale.request, declined=sale.decision.need), now)

    def _ask_again(self, sale: _Sale, request: PosRequest, now: Moment) -> list[Command]:
        sale.request, sale.deadline = request, 0.0
        sale.view = sale.load(now.local)
        decision = decide(request, sale.view, now.local)
        self.last = Judged(request, sale.view, decision, now.local)
        return self._decided(sale, decision, now)

    def _record(self, sale: _Sale, decision: Decision, now: Moment) -> list[Command]:
        kind = str(self.settings.service)
        self._sale, self.state = None, PosState.RECORDING
        self._recording = _Recording(decision, kind, sale.at, sale)
        place = record.Place(now.local, int(now.mono * 1e9), sale.view.view_seq)
        credential = sale.request.credential
        return [record.payment_commit(decision, place, service=kind, credential=credential)]

    def _recorded(self, event: Recorded | NotRecorded, now: Moment) -> list[Command]:
        done = self._recording
        if self.state is not PosState.RECORDING or done is None:
            return []
        self._recording, self.state = None, PosState.IDLE
        decision, kind = done.decision, done.kind
        if isinstance(event, NotRecorded):
            logger.error("%s not recorded, nothing charged: %s", kind, event.error)
            if done.sale is None:
                return [_show("系统故障", "System fault", tone="error")]
            return [_show("系统故障，未扣款", "Not charged: system fault", tone="error")]
        committed = event.committed
        logger.info(
            "%s %s %s",
            kind,
            "allowed" if decision.allowed else "denied",
            decision.reason,
            extra={
                "seq": committed.seq,
                "credential": decision.credential,
                "card": mask_card_number(decision.card_number or ""),
                "amount": decision.payment.amount if decision.payment else None,
            },
        )
        commands: list[Command] = [
            self._result_screen(done),
            Tell(PosOutcome(done.at, kind, decision, committed)),
        ]
        face = None if done.sale is None else done.sale.face
        if decision.alert is not None and face is not None and face.evidence is not None:
            still = KeepStill(
                face.evidence, str(decision.alert), decision.holder_id, committed.seq, now.local
            )
            commands.append(still)
        return commands

    def _result_screen(self, done: _Recording) -> Show:
        decision = done.decision
        payment = decision.payment
        if not decision.allowed or payment is None:
            return _show(message_zh(decision.reason), message_en(decision.reason), tone="error")
        if done.sale is None:
            return _show("纠错完成", f"退回 {format_yuan(Fen(payment.amount))} 元", tone="ok")
        view = done.sale.view
        before = sum(p.available(done.at.date()) for p in view.purses if p.purse in MONEY_PURSES)
        name = mask_name(view.holder.name) if view.holder else ""
        return _show(
            "支付成功 Paid",
            name,
            f"金额 {_payment_text(payment)}",
            f"余额 {format_yuan(Fen(before - payment.amount))} 元",
            tone="ok",
        )

    # --- face pay -----------------------------------------------------------------------------

    def _start_face_pay(self, now: Moment) -> list[Command]:
        if not self.face_pay:
            return [_show("本机未开通刷脸支付", "Face pay is not available here", tone="error")]
        s = self.settings
        merchant = self.store.rules().merchant(s.merchant_id, s.service)
        if amount_needed(merchant, now.local, self._amount):
            return [_show("请先输入金额", "Enter the amount first", tone="error")]
        self._ticket += 1
        self._deadline = now.mono + s.face_seconds + GRACE_SECONDS
        self.state = PosState.FACE
        return [
            _show("请看摄像头", "Look at the camera", tone="prompt"),
            IdentifyFace(self._ticket, s.face_seconds),
        ]

    def _face_checked(self, event: FaceChecked, now: Moment) -> list[Command]:
        if self.state is not PosState.FACE or event.ticket != self._ticket:
            return []
        self.state = PosState.IDLE if self._amount is None else PosState.AMOUNT
        result = event.result
        if result.holder_id is not None and result.outcome in (
            FaceOutcome.MATCH,
            FaceOutcome.NOT_LIVE,
        ):
            credential = FaceCredential(
                result.holder_id,
                _milli(result.score) or 0,
                live=result.outcome is FaceOutcome.MATCH,
                threshold_milli=_milli(result.threshold),
            )
            return self._start_sale(credential, now, result)
        # Nobody was identified, so there is nothing to journal; the amount stays for a card.
        reason = not_identified_reason(result.outcome)
        return [_show(message_zh(reason), message_en(reason), tone="error")]

    # --- corrections --------------------------------------------------------------------------

    def _start_correction(self, request: CorrectionRequested, now: Moment) -> list[Command]:
        tx_id = self.store.last_payment_id() if request.tx == "last" else request.tx
        if tx_id is None:
            return self._cancel_correction()
        self._correction = (tx_id, request.amount)
        self._deadline = now.mono + self.settings.prompt_timeout_s
        self.state = PosState.SUPERVISOR
        return [_show("纠错：请主管刷卡", "Correction: supervisor card", tone="prompt")]

    def _cancel_correction(self) -> list[Command]:
        self._correction = None
        self.state = PosState.IDLE if self._amount is None else PosState.AMOUNT
        return [_show("纠错已取消", "Correction cancelled", tone="error")]

    def _supervisor(self, event: FlowEvent, now: Moment) -> list[Command]:
        if isinstance(event, Cancelled):
            return self._cancel_correction()
        if isinstance(event, CardRemoved):
            self._held = None
            return []
        if not isinstance(event, CardPresented) or self._correction is None:
            self._defer(event)
            return []
        self._held = held_key(event.credential)
        tx_id, amount = self._correction
        self._correction = None
        s = self.settings
        view = self.store.correction_view(
            event.credential.number or "", tx_id, merchant_id=s.merchant_id, service=s.service
        )
        request = CorrectionRequest(event.credential, tx_id, amount, site=s.site)
        decision = decide(request, view, now.local)
        self.last = Judged(request, view, decision, now.local)
        account = None if view.original is None else view.original.holder_id
        self.state = PosState.RECORDING
        self._recording = _Recording(decision, "correction", now.local, None)
        place = record.Place(now.local, int(now.mono * 1e9), view.view_seq)
        return [record.correction_commit(decision, place, original_id=tx_id, account=account)]


def _show(headline: str, *lines: str, tone: str = "info") -> Show:
    return Show(Screen(headline, tuple(lines), tone))


def _milli(value: float | None) -> int | None:
    return None if value is None else round(value * 1000)


def _payment_text(payment: Payment) -> str:
    parts = " + ".join(
        f"{PURSE_ZH[p]} {format_yuan(Fen(a)) if p is not Purse.WORK_MEALS else a}"
        for p, a in payment.split
    )
    return f"{format_yuan(Fen(payment.amount))} 元 ({parts})"
