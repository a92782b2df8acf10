"""POS rules: canteen meals (fixed or entered price), shop and barber payments.

Order of checks, after the credential checks shared with doors: may this holder use this service
here, what does it cost, is it a second charge of the same card, within the class's limits, can
the purses pay, within the offline exposure caps, and finally — only for a payment that would
otherwise go through — is a PIN needed. Asking for a PIN for a payment that is going to fail
anyway would only waste the holder's time.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.cards import Card, Credential, Holder
from models.credential import check_credential
from models.decision import Decision
from models.reasons import Reason
from models.schedule import TimeWindow
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


@dataclass(frozen=True, slots=True)
class Limits:
    """Per card class; ``None`` means no limit of that kind."""

    per_tx: int | None = None
    per_day: int | None = None
    pin_free: int | None = None  # 小额免密: payments above this need the PIN
    offline_per_card_day: int | None = None


@dataclass(frozen=True, slots=True)
class PosPolicy:
    """Per terminal."""

    duplicate_window_s: int = 10
    pin_max_failures: int = 3
    offline_per_terminal: int | None = None
    max_amount: int = 1_000_000  # 10,000 yuan: a typo guard on the cashier's keypad


@dataclass(frozen=True, slots=True)
class PosRequest:
    credential: Credential
    entered_amount: int | None = None
    pin_ok: bool | None = None  # None: not asked yet
    confirmed_duplicate: bool = False


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


def _deny(reason: Reason, holder: Holder, card: Card, detail: str = "") -> Decision:
    return Decision.deny(reason, holder_id=holder.id, card_number=card.number, detail=detail)


def _allow(holder: Holder, card: Card, payment: Payment) -> Decision:
    return Decision(True, Reason.ALLOWED, holder.id, card.number, payment=payment)


def _subsidised_in_period(view: PosView, period: MealPeriod | None, now: datetime) -> bool:
    if period is None:
        return False
    return any(
        moment.date() == now.date() and period.serving(moment)
        for moment in view.subsidised_meals_today
    )


def _price(
    request: PosRequest, view: PosView, holder: Holder, card: Card, now: datetime
) -> tuple[int, MealPeriod | None, Pricing] | Decision:
    merchant = view.merchant
    period = merchant.period_at(now) if merchant.service is Service.MEAL else None
    if merchant.service is Service.MEAL and period is None:
        return _deny(Reason.OUTSIDE_MEAL_PERIOD, holder, card)
    pricing = merchant.pricing_for(period)
    if pricing is None:
        return _deny(Reason.NO_PRICE, holder, card, f"no price for {period.name if period else ''}")
    if pricing.mode == "fixed":
        price = pricing.price_for(holder.card_class)
        if price is None:
            return _deny(Reason.NO_PRICE, holder, card, f"no price for class {holder.card_class}")
        return price, period, pricing
    amount = request.entered_amount
    if amount is None or not 0 < amount <= view.policy.max_amount:
        return _deny(Reason.AMOUNT_INVALID, holder, card, f"entered {amount!r}")
    return amount, period, pricing


def decide_pos(request: PosRequest, view: PosView, now: datetime) -> Decision:
    """Decide a payment; an allowed decision carries the :class:`Payment`."""
    if now.tzinfo is None:
        raise ValueError("decide needs a timezone-aware site-local time")
    today = now.date()
    checked = check_credential(
        request.credential, view.card, view.holder, view.newest_issue_seq, today, for_payment=True
    )
    if isinstance(checked, Decision):
        return checked
    card, holder, merchant = checked.card, checked.holder, view.merchant
    if str(merchant.service) not in holder.services:
        return _deny(Reason.SERVICE_NOT_ALLOWED, holder, card)
    if merchant.service is Service.MEAL and holder.canteens and merchant.id not in holder.canteens:
        return _deny(Reason.CANTEEN_NOT_ALLOWED, holder, card)
    priced = _price(request, view, holder, card, now)
    if isinstance(priced, Decision):
        return priced
    amount, period, pricing = priced

    if (
        view.last_charge_here is not None
        and timedelta(0)
        <= now - view.last_charge_here
        < timedelta(seconds=view.policy.duplicate_window_s)
        and not request.confirmed_duplicate
    ):
        return _deny(Reason.DUPLICATE_TAP, holder, card)

    purses = purse_map(view.purses)
    may_subsidise = not checked.spend_only and not _subsidised_in_period(view, period, now)
    work_meals = purses.get(Purse.WORK_MEALS)
    if (
        may_subsidise
        and merchant.service is Service.MEAL
        and pricing.mode == "fixed"
        and work_meals is not None
        and work_meals.available(today) >= 1
    ):
        # A work meal (工作餐) covers the fixed-price meal entirely; no money moves.
        return _allow(holder, card, Payment(0, ((Purse.WORK_MEALS, 1),)))

    limits = view.limits
    if limits.per_tx is not None and amount > limits.per_tx:
        return _deny(Reason.OVER_TX_LIMIT, holder, card)
    if limits.per_day is not None and view.spent_today + amount > limits.per_day:
        return _deny(Reason.OVER_DAY_LIMIT, holder, card)
    split = split_payment(amount, purses, merchant.service, today, use_subsidy=may_subsidise)
    if split is None:
        return _deny(Reason.INSUFFICIENT_BALANCE, holder, card)
    if view.degraded:
        cap = limits.offline_per_card_day
        if cap is not None and view.pending_card_today + amount > cap:
            return _deny(Reason.OFFLINE_LIMIT_CARD, holder, card)
        terminal_cap = view.policy.offline_per_terminal
        if terminal_cap is not None and view.pending_terminal + amount > terminal_cap:
            return _deny(Reason.OFFLINE_LIMIT_TERMINAL, holder, card)
    if limits.pin_free is not None and amount > limits.pin_free:
        if view.pin_failures >= view.policy.pin_max_failures:
            return _deny(Reason.PIN_LOCKED, holder, card)
        if request.pin_ok is None:
            return _deny(Reason.PIN_REQUIRED, holder, card)
        if not request.pin_ok:
            return _deny(Reason.PIN_WRONG, holder, card)
    return _allow(holder, card, Payment(amount, split))
