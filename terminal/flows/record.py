"""A decision as the journal records it: the draft, the security event, the store effects.

This is bookkeeping, not rules: every field comes from the decision ``decide()`` returned and the
place it was made (door, merchant, time, view position). One function per journal kind, so a
door tap, a passage, a payment and a correction are recorded the same way wherever they happen
(the real flow, or diag's dry run, which builds the same commit and writes nothing).
"""

from dataclasses import dataclass
from datetime import datetime

from models.cards import Credential
from models.decision import Decision, GateAction
from models.journal import TransactionDraft
from models.wallet import Purse
from terminal.clock import rfc3339
from terminal.flows.qr import spent
from terminal.flows.steps import Commit
from terminal.store import (
    AwaitingPassage,
    Charged,
    Effect,
    PassageSettled,
    PassageUsed,
    PinOutcome,
    Refunded,
    SecurityEvent,
)


def usage_key(decision: Decision) -> str:
    """What the duplicate-tap guard and anti-passback remember a use under: the card, or the
    holder when a face passed without a usable card."""
    return decision.card_number or f"holder:{decision.holder_id}"


def security_event(decision: Decision) -> SecurityEvent | None:
    if decision.alert is None:
        return None
    detail: dict[str, object] = {"reason": str(decision.reason), "detail": decision.detail}
    detail.update(decision.event)
    return SecurityEvent(str(decision.alert), detail)


@dataclass(frozen=True, slots=True)
class Place:
    """Where and when a decision is recorded."""

    at: datetime
    mono_ns: int
    view_seq: int
    door: str | None = None
    direction: str | None = None


def draft(
    decision: Decision,
    place: Place,
    *,
    kind: str,
    ref: str | None = None,
    corrects: str | None = None,
) -> TransactionDraft:
    if not decision.final:
        raise ValueError(f"a decision that still needs {decision.need} is not recorded")
    payment = decision.payment if decision.allowed else None
    return TransactionDraft(
        kind=kind,
        at=rfc3339(place.at),
        mono_ns=place.mono_ns,
        credential=decision.credential,
        decision="allow" if decision.allowed else "deny",
        reason=decision.reason,
        view_seq=place.view_seq,
        card=decision.card_number,
        holder_id=decision.holder_id,
        door=place.door,
        direction=place.direction,
        amount=None if payment is None else payment.amount,
        split=() if payment is None else tuple((str(p), a) for p, a in payment.split),
        face_score=decision.face_score,
        used=decision.used,
        corrects=corrects,
        ref=ref,
        authorised_by=decision.authorised_by,
    )


def door_commit(decision: Decision, place: Place, credential: Credential | None = None) -> Commit:
    # An opening owes the journal its passage outcome; a crash before it is found at start.
    owed: tuple[Effect, ...] = (AwaitingPassage(),) if decision.gate is GateAction.OPEN else ()
    effects = owed + spent(credential, decision, place.at)
    return Commit(draft(decision, place, kind="door"), security_event(decision), effects)


def passage_commit(decision: Decision, place: Place, door_record_id: str) -> Commit:
    effects: tuple[Effect, ...] = (PassageSettled(door_record_id),)
    if decision.used and place.direction:
        effects += (PassageUsed(usage_key(decision), place.direction, place.at),)
    return Commit(draft(decision, place, kind="passage", ref=door_record_id), effects=effects)


def payment_commit(
    decision: Decision, place: Place, *, service: str, credential: Credential | None = None
) -> Commit:
    effects: list[Effect] = list(spent(credential, decision, place.at))
    payment = decision.payment
    if decision.allowed and payment is not None and decision.holder_id is not None:
        subsidised = any(p is not Purse.CASH for p, _ in payment.split)
        effects.append(
            Charged(
                decision.holder_id,
                usage_key(decision),
                place.at,
                payment.amount,
                payment.split,
                subsidised,
            )
        )
    if decision.pin_attempt is not None and decision.holder_id is not None:
        effects.append(PinOutcome(decision.holder_id, decision.pin_attempt, place.at))
    return Commit(draft(decision, place, kind=service), security_event(decision), tuple(effects))


def correction_commit(
    decision: Decision, place: Place, *, original_id: str, account: str | None
) -> Commit:
    effects: tuple[Effect, ...] = ()
    payment = decision.payment
    if decision.allowed and payment is not None and account is not None:
        effects = (Refunded(original_id, account, place.at, payment.amount, payment.split),)
    return Commit(
        draft(decision, place, kind="correction", corrects=original_id),
        security_event(decision),
        effects,
    )
