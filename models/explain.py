"""Why a decision came out as it did, in the words of the rules: for the technician's dry run.

The verdict is always ``decide()``'s; these are the facts it weighed, read from the same request
and view: what the card said against the registry, the card's and holder's standing, the door
mode, each access group tried with its windows, the face score against its threshold, and at a
till the service, the price, the limits and the purses. Pure, like the rules.
"""

from collections.abc import Iterable
from datetime import date, datetime

from models.cards import Card, CardFault, FaceCredential, Holder, PresentedCard
from models.correction import CorrectionRequest, CorrectionView
from models.credential import SiteCards
from models.door import DoorRequest, DoorView
from models.pos import PosRequest, PosView, amount_needed
from models.qr import QrCredential, QrFault
from models.schedule import HOLIDAY, NO_CALENDAR, AccessGroup, Calendar, TimeWindow
from models.wallet import MONEY_PURSES

_DAYS = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun", HOLIDAY: "holiday"}


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _window(window: TimeWindow) -> str:
    days = ",".join(_DAYS[d] for d in sorted(window.days))
    return f"{days} {_hhmm(window.start)}-{_hhmm(window.end)}"


def _period(start: date | None, end: date | None) -> str:
    if start is None and end is None:
        return "no limit"
    return f"{start or '…'} to {end or '…'}"


def _credential(
    credential: object, card: Card | None, site: SiteCards, newest: int | None
) -> list[str]:
    if isinstance(credential, CardFault):
        return [f"the reader could not read the card: {credential.reason} {credential.detail}"]
    if isinstance(credential, FaceCredential):
        live = "live" if credential.live else "NOT live"
        facts = [
            f"face of holder {credential.holder_id}, score {credential.score_milli / 1000:.3f}"
            f", {live}"
        ]
        if card is not None:
            facts.append(
                f"the holder's newest card is {card.status} (issue {card.issue_seq}); "
                "a lost or replaced card does not stop the face"
            )
        else:
            facts.append("the holder has no card on record: judged on standing alone")
        return facts
    if isinstance(credential, QrFault):
        return [f"electronic-card code refused: {credential.reason} ({credential.detail})"]
    if isinstance(credential, QrCredential):
        facts = [
            f"electronic-card code of holder {credential.holder_id}, key {credential.key_id}, "
            f"signature verified, valid {credential.iat}..{credential.exp} (unix s), nonce new"
        ]
        if card is not None:
            facts.append(
                f"the holder's newest card is {card.status} (issue {card.issue_seq}); "
                "a lost or replaced card does not stop the code"
            )
        else:
            facts.append("the holder has no card on record: judged on standing alone")
        return facts
    if not isinstance(credential, PresentedCard):
        return []
    facts = [f"genuine-card check: {credential.genuine}"]
    if credential.issuer_id is not None:
        known = (
            "not checked"
            if not site.issuers
            else ("this site's" if credential.issuer_id in site.issuers else "NOT this site's")
        )
        facts.append(f"issuer {credential.issuer_id}: {known}")
    if card is None:
        facts.append("the card number is not in the allowlist")
        return facts
    if credential.class_code is not None:
        named = site.class_name(credential.class_code) or "undefined"
        facts.append(
            f"class code {credential.class_code} on the card = {named}; registry: {card.card_class}"
        )
    seq = "not read" if credential.issue_seq is None else str(credential.issue_seq)
    facts.append(
        f"issue sequence on the card {seq}; registry {card.issue_seq}, "
        f"holder's newest {newest if newest is not None else card.issue_seq}"
    )
    facts.append(
        f"card status {card.status}; registry validity {_period(card.valid_from, card.valid_until)}"
    )
    if credential.valid_from or credential.valid_until:
        facts.append(
            f"validity written on the card {_period(credential.valid_from, credential.valid_until)}"
        )
    return facts


def _holder(holder: Holder | None) -> list[str]:
    if holder is None:
        return ["holder: not registered here"]
    facts = [
        f"holder {holder.id}: {holder.status}, class {holder.card_class}, registered "
        f"{_period(holder.valid_from, holder.valid_until)}"
    ]
    if holder.spend_only_until is not None:
        facts.append(f"spend-only until {holder.spend_only_until}")
    return facts


def _groups(
    groups: Iterable[AccessGroup], door: str, now: datetime, calendars: tuple[Calendar, ...]
) -> list[str]:
    tried = [g for g in groups if door in g.doors]
    if not tried:
        return [f"no access group of the holder includes door {door}"]
    facts = []
    for group in tried:
        calendar = next((c for c in calendars if c.name == group.calendar), NO_CALENDAR)
        kind = calendar.day_kind(now.date())
        today = "holiday" if kind == HOLIDAY else _DAYS[kind]
        state = "open" if group.open_at(now, calendars) else "closed"
        windows = "; ".join(_window(w) for w in group.windows)
        facts.append(
            f"group {group.id} (calendar {group.calendar or 'none'}, today counts as "
            f"{today}): {windows} -> {state} at {now:%H:%M}"
        )
    return facts


def explain_door(request: DoorRequest, view: DoorView, now: datetime) -> list[str]:
    facts = [f"door {request.door_id} mode {request.mode}, face policy {request.face_policy}"]
    facts += _credential(request.credential, view.card, request.site, view.newest_issue_seq)
    facts += _holder(view.holder)
    facts += _groups(view.groups, request.door_id, now, view.calendars)
    rule, last = view.anti_passback, view.last_passage
    if rule.mode != "off":
        seen = "none" if last is None else f"{last.direction} at {last.at:%Y-%m-%d %H:%M}"
        facts.append(f"anti-passback {rule.mode} ({rule.minutes} min): last passage {seen}")
    if request.face is not None:
        facts.append(request.face.describe())
    return facts


def explain_pos(request: PosRequest, view: PosView, now: datetime) -> list[str]:
    merchant = view.merchant
    facts = [f"merchant {merchant.id} ({merchant.service})"]
    facts += _credential(request.credential, view.card, request.site, view.newest_issue_seq)
    facts += _holder(view.holder)
    if view.holder is not None:
        facts.append(
            f"services {sorted(view.holder.services)}; canteens "
            f"{sorted(view.holder.canteens) or 'any'}"
        )
    period = merchant.period_at(now)
    pricing = merchant.pricing_for(period)
    facts.append(
        f"meal period {period.name if period else 'none'} at {now:%H:%M}; pricing "
        f"{'none' if pricing is None else pricing.mode}"
    )
    if amount_needed(merchant, now, request.entered_amount):
        facts.append("the cashier has not entered the amount")
    limits = view.limits
    facts.append(
        f"limits per payment {limits.per_tx}, per day {limits.per_day} (spent "
        f"{view.spent_today}), PIN above {limits.pin_free}, PIN failures "
        f"{view.pin_failures}/{view.policy.pin_max_failures}"
    )
    money = sum(p.available(now.date()) for p in view.purses if p.purse in MONEY_PURSES)
    facts.append(
        f"money available {money} fen in {len(view.purses)} purses"
        f"{'; degraded: offline caps apply' if view.degraded else ''}"
    )
    return facts


def explain_correction(request: CorrectionRequest, view: CorrectionView) -> list[str]:
    found = "not found" if view.original is None else f"{view.original.amount} fen"
    supervisors = sorted(view.merchant.supervisors)
    return [
        f"correction of {request.tx_id} ({found}) by "
        f"{view.supervisor_holder.id if view.supervisor_holder else 'an unknown card'}; "
        f"supervisors here: {supervisors}"
    ]
