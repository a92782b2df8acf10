"""Purses, the order they pay in, and how a correction gives money back.

Headquarters owns the ledger. The terminal holds each purse's balance as of the ledger entries it
has applied (which include other terminals' debits, learned over sync) and subtracts its own debits
that headquarters has not echoed back yet ("pending"). Money is integer fen; the work-meal purse
counts meals, not fen.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Purse(StrEnum):
    CASH = "cash"
    MEAL_SUBSIDY = "meal_subsidy"
    BARBER_SUBSIDY = "barber_subsidy"
    WORK_MEALS = "work_meals"


class Service(StrEnum):
    MEAL = "meal"
    SHOP = "shop"
    BARBER = "barber"


MONEY_PURSES = (Purse.CASH, Purse.MEAL_SUBSIDY, Purse.BARBER_SUBSIDY)
SUBSIDY_FOR: dict[Service, Purse] = {
    Service.MEAL: Purse.MEAL_SUBSIDY,
    Service.BARBER: Purse.BARBER_SUBSIDY,
}

Split = tuple[tuple[Purse, int], ...]


@dataclass(frozen=True, slots=True)
class Payment:
    """Money moved by an allowed payment or correction: ``amount`` fen split over purses.

    A work meal is ``Payment(0, ((WORK_MEALS, 1),))``: one meal off the count purse, no money.
    """

    amount: int
    split: Split

    @property
    def money_split(self) -> Split:
        return tuple(part for part in self.split if part[0] is not Purse.WORK_MEALS)


@dataclass(frozen=True, slots=True)
class PurseState:
    """One purse of one account as this terminal knows it."""

    purse: Purse
    balance: int
    pending: int = 0
    expires: date | None = None

    def available(self, today: date) -> int:
        """What may be spent today: nothing from an expired subsidy, never below zero."""
        if self.expires is not None and today > self.expires:
            return 0
        return max(0, self.balance - self.pending)


def purse_map(purses: Iterable[PurseState]) -> dict[Purse, PurseState]:
    return {p.purse: p for p in purses}


def split_payment(
    amount: int,
    purses: Mapping[Purse, PurseState],
    service: Service,
    today: date,
    *,
    use_subsidy: bool,
) -> Split | None:
    """How ``amount`` is paid: the subsidy matching the service first, then cash.

    ``None`` when the purses cannot cover it. The parts always sum to ``amount``.
    """
    if amount < 0:
        raise ValueError("a payment is never negative")
    parts: list[tuple[Purse, int]] = []
    remaining = amount
    subsidy = SUBSIDY_FOR.get(service)
    if use_subsidy and subsidy is not None and subsidy in purses:
        take = min(remaining, purses[subsidy].available(today))
        if take > 0:
            parts.append((subsidy, take))
            remaining -= take
    if remaining > 0:
        cash = purses.get(Purse.CASH)
        if cash is None or cash.available(today) < remaining:
            return None
        parts.append((Purse.CASH, remaining))
    return tuple(parts)


def refund_split(original: Split, refunded: Mapping[Purse, int], amount: int) -> Split | None:
    """Give ``amount`` back to the purses ``original`` was paid from, cash first.

    Cash first because it is the holder's own money; subsidy comes back last. ``refunded`` is what
    earlier corrections of the same payment already returned. ``None`` when ``amount`` exceeds
    what is left to refund.
    """
    if amount <= 0:
        return None
    order = sorted(original, key=lambda part: part[0] is not Purse.CASH)
    parts: list[tuple[Purse, int]] = []
    remaining = amount
    for purse, paid in order:
        if purse not in MONEY_PURSES:
            continue
        left = paid - refunded.get(purse, 0)
        take = min(remaining, left)
        if take > 0:
            parts.append((purse, take))
            remaining -= take
    return tuple(parts) if remaining == 0 else None
