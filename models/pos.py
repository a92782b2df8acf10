"""POS rules: canteen meals (fixed or entered price), shop and barber payments.

Order of checks, after the credential checks shared with doors: may this holder use this service
here, what does it cost, is it a second charge of the same card, within the class's limits, can
the purses pay, within the offline exposure caps, and finally — only for a payment that would
otherwise go through — is a PIN needed. Asking for a PIN for a payment that is going to fail
anyway would only waste the holder's time.

What the till must ask comes back as a :class:`~models.decision.Need` (the amount, a duplicate
confirmation, the PIN, and for face pay the customer's confirmation of name and amount, asked
before anything else so that somebody taken for another person never sees that person's PIN
prompt). The answer comes back in the request; a prompt the customer cancelled or let run out
comes back as ``declined`` and is journalled as ``cancelled_by_user``.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from models.cards import Card, Credential, FaceCredential, Holder
from models.credential import Checked, SiteCards, check_credential, credential_kind
from models.decision import Alert, Decision, Need
from models.reasons import Reason
from models.schedule import TimeWindow, since
from models.wallet import Payment, Purse, PurseState, Service, purse_map, split_payment

ALL_WEEK = frozenset(range(1, 8))


@dataclass(frozen=True, slots=True)
class MealPeriod:
    """A named serving window of one canteen (breakfast 06:30–09:00 on weekdays, ...)."""

    name: str
    window: TimeWindow

    def serving(self, now: datetime) -> bool:
        weekday = now.isoweekday()
        yesterday = (now - timedelta(days=1)).isoweekday()
        return self.window.admits(weekday, yesterday, now.hour * 60 + now.minute)


@dataclass(frozen=True, slots=True)
class Pricing:
    """定额 (fixed, possibly by card class) or 计价 (the cashier enters the amount)."""

    mode: str  # "fixed" | "entered"
    by_class: tuple[tuple[str, int], ...] = ()
    default: int | None = None

    def price_for(self, card_class: str) -> int | None:
        return dict(self.by_class).get(card_class, self.default)


ENTERED = Pricing("entered")


@dataclass(frozen=True, slots=True)
class Merchant:
    """The canteen, shop or barber this POS belongs to."""

    id: str
    service: Service
    meal_periods: tuple[MealPeriod, ...] = ()
    prices: tuple[tuple[str, Pricing], ...] = ()  # meal period name -> pricing
    supervisors: frozenset[str] = frozenset()

    def period_at(self, now: datetime) -> MealPeriod | None:
        return next((p for p in self.meal_periods if p.serving(now)), None)

    def pricing_for(self, period: MealPeriod | None) -> Pricing | None:
        if self.service is not Service.MEAL:
            return ENTERED
        return None if period is None else dict(self.prices).get(period.name)


# What one card may spend a day on this terminal while it is degraded, unless HQ's limits rule
# for its class says otherwise (null there: no cap). Offline, several terminals each grant it, so
# it bounds what an account can overspend before HQ sees the debits: RULES.md "Money".
DEFAULT_OFFLINE_PER_CARD_DAY = 20_000  # 200 yuan


@dataclass(frozen=True, slots=True)
class Limits:
    """Per card class; ``None`` means no limit of that kind."""

    per_tx: int | None = None
    per_day: int | None = None
    pin_free: int | None = None  # 小额免密: payments above this need the PIN
    offline_per_card_day: int | None = DEFAULT_OFFLINE_PER_CARD_DAY


@dataclass(frozen=True, slots=True)
class PosPolicy:
    """Per terminal."""

    duplicate_window_s: int = 10
    pin_max_failures: int = 3
    offline_per_terminal: int | None = None
    max_amount: int = 1_000_000  # 10,000 yuan: a typo guard on the cashier's keypad

    def accepts_amount(self, amount: int) -> bool:
        """Whether the keypad may take ``amount`` (fen) for the next payment."""
        return 0 < amount <= self.max_amount


@dataclass(frozen=True, slots=True)
class PosRequest:
    """A payment: the credential, the cashier's amount, and the answers gathered so far."""

    credential: Credential
    entered_amount: int | None = None
    pin_ok: bool | None = None  # None: not asked yet
    confirmed_duplicate: bool = False
    pay_confirmed: bool = False  # face pay: the customer saw whose account pays, and how much
    declined: Need | None = None  # the prompt the customer cancelled or let run out
    site: SiteCards = field(default_factory=SiteCards)


@dataclass(frozen=True, slots=True)
class PosView:
    """What the store knew about the card, its purses and its recent use, for one payment."""

    view_seq: int
    merchant: Merchant
    policy: PosPolicy = field(default_factory=PosPolicy)
    card: Card | None = None
    holder: Holder | None = None
    newest_issue_seq: int | None = None
    limits: Limits = field(default_factory=Limits)
    purses: tuple[PurseState, ...] = ()
    spent_today: int = 0  # the account's allowed money debits today, all terminals known
    subsidised_meals_today: tuple[datetime, ...] = ()  # when a subsidy/work meal paid a meal
    last_charge_here: datetime | None = None  # this card's last payment at this terminal
    pin_failures: int = 0
    pending_card_today: int = 0  # this terminal's unreconciled debits of the account today
    pending_terminal: int = 0  # all of this terminal's unreconciled debits
    degraded: bool = False  # HQ's head has expired: offline exposure caps apply


def amount_needed(merchant: Merchant, now: datetime, amount: int | None) -> bool:
    """Whether a sale here and now waits for the cashier's amount (计价) before anything else."""
    pricing = merchant.pricing_for(merchant.period_at(now))
    return pricing is not None and pricing.mode == "entered" and amount is None


def _subsidised_in_period(view: PosView, period: MealPeriod | None, now: datetime) -> bool:
    if period is None:
        return False
    return any(
        moment.date() == now.date() and period.serving(moment)
        for moment in view.subsidised_meals_today
    )


@dataclass(frozen=True, slots=True)
class _Sale:
    """One payment being judged: whose, by which credential, to say no or yes with."""

    request: PosRequest
    view: PosView
    checked: Checked
    now: datetime

    @property
    def holder(self) -> Holder:
        return self.checked.holder

    def deny(self, reason: Reason, detail: str = "") -> Decision:
        return Decision.deny(
            reason, holder_id=self.holder.id, card_number=self.checked.card_number, detail=detail
        )

    def ask(self, need: Need, reason: Reason, payment: Payment | None = None) -> Decision:
        if self.request.declined is need:
            return self.deny(Reason.CANCELLED_BY_USER, f"at the {reason} prompt")
        return Decision.asking(
            need,
            reason,
            holder_id=self.holder.id,
            card_number=self.checked.card_number,
            payment=payment,
        )

    def allow(self, payment: Payment, pin_attempt: bool | None = None) -> Decision:
        return Decision(
            True,
            Reason.ALLOWED,
            self.holder.id,
            self.checked.card_number,
            payment=payment,
            pin_attempt=pin_attempt,
        )


def _price(sale: _Sale) -> tuple[int, MealPeriod | None, Pricing] | Decision:
    merchant, now, holder = sale.view.merchant, sale.now, sale.holder
    period = merchant.period_at(now) if merchant.service is Service.MEAL else None
    if merchant.service is Service.MEAL and period is None:
        return sale.deny(Reason.OUTSIDE_MEAL_PERIOD)
    pricing = merchant.pricing_for(period)
    if pricing is None:
        return sale.deny(Reason.NO_PRICE, f"no price for {period.name if period else ''}")
    if pricing.mode == "fixed":
        price = pricing.price_for(holder.card_class)
        if price is None:
            return sale.deny(Reason.NO_PRICE, f"no price for class {holder.card_class}")
        return price, period, pricing
    amount = sale.request.entered_amount
    if amount is None:
        # Not a decision: the cashier types the amount and the customer taps again.
        return Decision.asking(
            Need.AMOUNT,
            Reason.AMOUNT_REQUIRED,
            holder_id=holder.id,
            card_number=sale.checked.card_number,
        )
    if not sale.view.policy.accepts_amount(amount):
        return sale.deny(Reason.AMOUNT_INVALID, f"entered {amount!r}")
    return amount, period, pricing


def decide_pos(request: PosRequest, view: PosView, now: datetime) -> Decision:
    """Decide a payment; an allowed decision carries the :class:`Payment`."""
    if now.tzinfo is None:
        raise ValueError("decide needs a timezone-aware site-local time")
    credential = request.credential
    checked = check_credential(
        credential,
        view.card,
        view.holder,
        view.newest_issue_seq,
        now.date(),
        for_payment=True,
        site=request.site,
    )
    if isinstance(checked, Decision):
        decision = checked
    else:
        decision = _judge(_Sale(request, view, checked, now))
        if isinstance(credential, FaceCredential) and not request.pay_confirmed:
            decision = _confirm_face_pay(_Sale(request, view, checked, now), decision)
    if isinstance(credential, FaceCredential):
        return replace(decision, credential="face", face_score=credential.score_milli)
    return replace(decision, credential=credential_kind(credential))


def _confirm_face_pay(sale: _Sale, decision: Decision) -> Decision:
    """1:N can name the wrong person: before any other prompt, and before anything is charged,
    the customer sees whose account pays and how much. Only a payment that can go through is
    shown; one the rules refuse whatever the answers is refused at once."""
    answered = replace(sale.request, pin_ok=True, confirmed_duplicate=True, declined=None)
    would = _judge(replace(sale, request=answered))
    if not would.allowed:
        return decision
    return sale.ask(Need.PAY_CONFIRM, Reason.PAY_CONFIRM_REQUIRED, would.payment)


def _judge(sale: _Sale) -> Decision:
    request, view, now = sale.request, sale.view, sale.now
    holder, merchant, today = sale.holder, view.merchant, now.date()
    if str(merchant.service) not in holder.services:
        return sale.deny(Reason.SERVICE_NOT_ALLOWED)
    if merchant.service is Service.MEAL and holder.canteens and merchant.id not in holder.canteens:
        return sale.deny(Reason.CANTEEN_NOT_ALLOWED)
    priced = _price(sale)
    if isinstance(priced, Decision):
        return priced
    amount, period, pricing = priced

    if (
        view.last_charge_here is not None
        and since(view.last_charge_here, now) < timedelta(seconds=view.policy.duplicate_window_s)
        and not request.confirmed_duplicate
    ):
        return sale.ask(Need.DUPLICATE_CONFIRM, Reason.DUPLICATE_TAP)

    purses = purse_map(view.purses)
    may_subsidise = not sale.checked.spend_only and not _subsidised_in_period(view, period, now)
    work_meals = purses.get(Purse.WORK_MEALS)
    if (
        may_subsidise
        and merchant.service is Service.MEAL
        and pricing.mode == "fixed"
        and work_meals is not None
        and work_meals.available(today) >= 1
    ):
        # A work meal (工作餐) covers the fixed-price meal entirely; no money moves.
        return sale.allow(Payment(0, ((Purse.WORK_MEALS, 1),)))

    limits = view.limits
    if limits.per_tx is not None and amount > limits.per_tx:
        return sale.deny(Reason.OVER_TX_LIMIT)
    if limits.per_day is not None and view.spent_today + amount > limits.per_day:
        return sale.deny(Reason.OVER_DAY_LIMIT)
    split = split_payment(amount, purses, merchant.service, today, use_subsidy=may_subsidise)
    if split is None:
        return sale.deny(Reason.INSUFFICIENT_BALANCE)
    if view.degraded:
        cap = limits.offline_per_card_day
        if cap is not None and view.pending_card_today + amount > cap:
            return sale.deny(Reason.OFFLINE_LIMIT_CARD)
        terminal_cap = view.policy.offline_per_terminal
        if terminal_cap is not None and view.pending_terminal + amount > terminal_cap:
            return sale.deny(Reason.OFFLINE_LIMIT_TERMINAL)
    payment = Payment(amount, split)
    if limits.pin_free is None or amount <= limits.pin_free:
        return sale.allow(payment)
    failures, most = view.pin_failures, view.policy.pin_max_failures
    if failures >= most:
        return sale.deny(Reason.PIN_LOCKED)
    if request.pin_ok is None:
        return sale.ask(Need.PIN, Reason.PIN_REQUIRED, payment)
    if request.pin_ok:
        return sale.allow(payment, pin_attempt=True)
    wrong = replace(sale.deny(Reason.PIN_WRONG), pin_attempt=False)
    if failures + 1 >= most:
        return replace(wrong, alert=Alert.PIN_LOCKED, event=(("failures", failures + 1),))
    return wrong
