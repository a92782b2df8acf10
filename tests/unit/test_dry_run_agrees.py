"""The technician's dry run and a real tap agree, reason by reason.

Each case sets a demo site up for one reason code, asks the dry run (terminal/dryrun.py, what
``ykt diag card`` runs) and then taps for real through the tap loop: the decisions must be the
same, and what the dry run would have journalled must be what the tap journalled. Every reason
code is either a case here or listed in NOT_FROM_A_TAP with why a tap cannot produce it.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import pytest

from drivers.interfaces import AmountEntered, CardPresented, CardRemoved
from drivers.qr.interface import QrPresented, QrRemoved
from drivers.sim import SimDisplay, SimKeypadControl, SimReaderControl
from models.cards import Card, CardCredential, CardFault, Genuineness, PresentedCard
from models.credential import SiteCards
from models.door import AntiPassback, DoorMode
from models.face import FaceOutcome
from models.pos import PosPolicy
from models.reasons import Reason
from models.wallet import Service
from terminal.clock import SetClock
from terminal.dryrun import DryRunner
from terminal.faces.evidence import FaceUse
from terminal.faces.verifier import FaceResult
from terminal.flows.door import DoorSettings
from terminal.flows.pos import PosSettings
from terminal.loop import TapLoop
from terminal.store import Store
from terminal.store.allowlist import card_row, upsert_cards
from tests.factories import TZ, at
from tests.fixtures import CANTEEN, DOOR, SHOP, card_number, seed
from tests.loops import door_loop, pos_loop, settle
from tests.qr_tokens import PhoneKey, b64url

MONDAY_9 = at(2026, 11, 23, "09:00")
BREAKFAST = at(2026, 11, 23, "07:30")
SITE = SiteCards(frozenset({"5943484E00000001"}))

# Reasons a card tapped at a reader never gets as its decision, and why.
NOT_FROM_A_TAP = {
    Reason.PASSAGE_CONFIRMED: "a passage record, written after the gate reported",
    Reason.PASSAGE_TIMEOUT: "a passage record",
    Reason.PASSAGE_UNKNOWN: "a passage record written at start for an opening a crash cut short",
    Reason.GATE_FAULT: "a passage record",
    Reason.REMOTE_OPEN: "HQ's open command, not a tap",
    Reason.FREE_PASSAGE: "what the display says in free mode; the decision is allowed",
    Reason.AMOUNT_INVALID: "the keypad refuses such an amount before any tap",
    Reason.PIN_WRONG: "needs a PIN typed at the prompt; a dry run stops at the prompt",
    Reason.CANCELLED_BY_USER: "an answer at a prompt; a dry run stops at the prompt",
    Reason.PAY_CONFIRM_REQUIRED: "face pay, started by the face key, not a card",
    Reason.FACE_UNKNOWN: "face only: nobody identified, so no decision",
    Reason.CORRECTION_NOT_AUTHORISED: "a supervisor's tap for a correction, not a payment",
    Reason.CORRECTION_NOT_FOUND: "a correction",
    Reason.CORRECTION_EXCEEDS: "a correction",
}


def card(n: int, **fields: object) -> PresentedCard:
    values: dict[str, object] = {"genuine": Genuineness.GENUINE, "issue_seq": 1} | fields
    return PresentedCard(card_number(n), **values)  # type: ignore[arg-type]


def sql(statement: str, *args: object) -> Callable[[Store], None]:
    def run(store: Store) -> None:
        with store.write() as conn:
            conn.execute(statement, args)

    return run


def add_card(n: int, holder: str, card_class: str = "red") -> Callable[[Store], None]:

    def run(store: Store) -> None:
        with store.write() as conn:
            upsert_cards(conn, [card_row(Card(card_number(n), holder, 1, card_class))])

    return run


class ScriptedFaces:
    """A verifier that answers what the case says the camera saw (the real pipeline is tested
    on real photos in tests/faces)."""

    def __init__(self, result: FaceResult) -> None:
        self.result = result

    def verify(self, holder_id: str, timeout: float) -> FaceResult:
        return replace(self.result, holder_id=holder_id)

    def identify(self, timeout: float) -> FaceResult:
        return self.result


PHONE = PhoneKey("H005", "q-1", bytes([5]) * 32)  # the holder whose card 5 was lost
LEADER_PHONE = PhoneKey("H001", "q-1", bytes([1]) * 32)


def phones(*keys: PhoneKey, spent: bytes | None = None) -> Callable[[Store], None]:
    """HQ lists these keys (as an applied holder.upsert leaves them); ``spent``: a nonce of the
    first one this terminal already accepted."""

    def run(store: Store) -> None:
        with store.write() as conn:
            for key in keys:
                conn.execute(
                    "UPDATE holders SET qr_keys = ? WHERE id = ?",
                    (json.dumps([{"k": key.key_id, "pub": key.pub}]), key.holder_id),
                )
            if spent is not None:
                conn.execute(
                    "INSERT INTO qr_nonces VALUES (?, ?, ?)",
                    (keys[0].holder_id, b64url(spent), 2_000_000_000),
                )

    return run


def code(
    phone: PhoneKey, when: datetime, *, age: int = 0, nonce: bytes = b"\x01" * 12
) -> QrPresented:
    issued = int(when.timestamp()) - age
    return QrPresented(phone.token(issued, issued + 30, nonce=nonce), "sim")


@dataclass(frozen=True)
class Case:
    reason: Reason
    credential: CardCredential | QrPresented
    pos: bool = False
    setup: Callable[[Store], None] = lambda store: None
    at: datetime | None = None
    mode: DoorMode = DoorMode.NORMAL
    face: FaceResult | None = None
    passback: bool = False  # tap once for real first (anti-passback)
    merchant: tuple[str, Service] = (SHOP, Service.SHOP)
    amount: int | None = None
    degraded: bool = False
    policy: PosPolicy = field(default_factory=PosPolicy)


def face(outcome: FaceOutcome, score: float | None = None) -> FaceResult:
    return FaceResult(outcome, score=score, threshold=0.951)


DOOR_CASES = [
    Case(Reason.ALLOWED, card(1)),
    Case(Reason.CARD_UNKNOWN, PresentedCard("36019999999999999999", Genuineness.GENUINE)),
    Case(Reason.CARD_MALFORMED, CardFault(Reason.CARD_MALFORMED, "public file has 12 bytes")),
    Case(Reason.CARD_KEY_UNKNOWN, CardFault(Reason.CARD_KEY_UNKNOWN, "SW 6A88", card_number(1))),
    Case(Reason.CARD_NOT_GENUINE, card(1, genuine=Genuineness.NOT_GENUINE)),
    Case(Reason.CARD_ISSUER_UNKNOWN, card(1, issuer_id="5943484E000000FF")),
    Case(Reason.CARD_CLASS_MISMATCH, card(1, class_code=2, issuer_id="5943484E00000001")),
    Case(Reason.CARD_LOST, card(5)),
    Case(Reason.CARD_REPLACED, card(7)),
    Case(Reason.CARD_CANCELLED, card(2), setup=sql("UPDATE cards SET status = 'cancelled'")),
    Case(Reason.CARD_FROZEN, card(2), setup=sql("UPDATE cards SET status = 'frozen'")),
    Case(Reason.CARD_EXPIRED, card(6)),
    Case(Reason.CARD_NOT_YET_VALID, card(2, valid_from=date(2027, 1, 1))),
    Case(Reason.CARD_SPEND_ONLY, card(10)),
    Case(Reason.CARD_MISMATCH, card(2, issue_seq=4)),
    Case(Reason.HOLDER_UNKNOWN, card(40), setup=add_card(40, "H404")),
    Case(Reason.HOLDER_INACTIVE, card(2), setup=sql("UPDATE holders SET status = 'inactive'")),
    Case(Reason.NO_ACCESS, card(4)),
    Case(Reason.OUTSIDE_SCHEDULE, card(8), at=at(2026, 11, 23, "19:00")),
    Case(Reason.ANTI_PASSBACK, card(2), passback=True),
    Case(Reason.DOOR_LOCKED, card(2), mode=DoorMode.LOCKED),
    Case(Reason.FACE_REQUIRED, card(2), face=face(FaceOutcome.NO_FACE)),
    Case(Reason.FACE_MISMATCH, card(2), face=face(FaceOutcome.MISMATCH, 0.61)),
    Case(Reason.FACE_NOT_LIVE, card(2), face=face(FaceOutcome.NOT_LIVE, 0.97)),
    Case(Reason.FACE_NOT_ENROLLED, card(2), face=face(FaceOutcome.NO_TEMPLATE)),
    Case(Reason.FACE_UNAVAILABLE, card(2), face=face(FaceOutcome.CAMERA_FAULT)),
    Case(Reason.ALLOWED, code(PHONE, MONDAY_9), setup=phones(PHONE)),
    Case(Reason.QR_INVALID, QrPresented("YKT1.not-a-code", "sim"), setup=phones(PHONE)),
    Case(Reason.QR_EXPIRED, code(PHONE, MONDAY_9, age=120), setup=phones(PHONE)),
    Case(
        Reason.QR_REPLAYED,
        code(PHONE, MONDAY_9, nonce=b"\x09" * 12),
        setup=phones(PHONE, spent=b"\x09" * 12),
    ),
    Case(Reason.QR_UNKNOWN_KEY, code(PHONE, MONDAY_9)),  # HQ lists no key for the holder
]
# A passing face: card + face decides ALLOWED too (the face check runs in both).
FACE_PASSES = Case(Reason.ALLOWED, card(2), face=face(FaceOutcome.MATCH, 0.97))

POS_CASES = [
    Case(Reason.SERVICE_NOT_ALLOWED, card(4), pos=True, amount=500),
    Case(Reason.CANTEEN_NOT_ALLOWED, card(9), pos=True, merchant=(CANTEEN, Service.MEAL)),
    Case(
        Reason.OUTSIDE_MEAL_PERIOD,
        card(1),
        pos=True,
        merchant=(CANTEEN, Service.MEAL),
        at=at(2026, 11, 23, "10:00"),
    ),
    Case(
        Reason.NO_PRICE,
        card(1),
        pos=True,
        merchant=(CANTEEN, Service.MEAL),
        setup=sql("DELETE FROM rules WHERE id = 'pr-c1-breakfast'"),
    ),
    Case(Reason.AMOUNT_REQUIRED, card(1), pos=True),  # shop prices are the cashier's
    Case(Reason.OVER_TX_LIMIT, card(2), pos=True, amount=20_001),
    Case(
        Reason.OVER_DAY_LIMIT,
        card(2),
        pos=True,
        amount=4_000,
        setup=sql("INSERT INTO account_day VALUES ('H002', '2026-11-23', 49000, '[]')"),
    ),
    Case(Reason.INSUFFICIENT_BALANCE, card(3), pos=True, amount=9_000),
    Case(
        Reason.OFFLINE_LIMIT_CARD,
        card(2),
        pos=True,
        amount=2_000,
        degraded=True,
        setup=sql(
            "UPDATE rules SET body = ? WHERE id = 'lim-red'",
            json.dumps({"class": "red", "per_tx": 20_000, "offline_per_card_day": 1_000}),
        ),
    ),
    Case(
        Reason.OFFLINE_LIMIT_TERMINAL,
        card(1),
        pos=True,
        amount=2_000,
        degraded=True,
        policy=PosPolicy(offline_per_terminal=1_000),
    ),
    Case(Reason.PIN_REQUIRED, card(1), pos=True, amount=12_000),
    Case(
        Reason.PIN_LOCKED,
        card(1),
        pos=True,
        amount=12_000,
        setup=sql("INSERT INTO pin_state VALUES ('H001', 3, '2026-11-23T08:00:00+08:00')"),
    ),
    Case(
        Reason.DUPLICATE_TAP,
        card(1),
        pos=True,
        amount=500,
        setup=sql(
            "INSERT INTO card_usage (card, last_charge_at) VALUES (?, ?)",
            card_number(1),
            (BREAKFAST - timedelta(seconds=3)).isoformat(),
        ),
    ),
    Case(
        Reason.CARD_SPEND_ONLY_ENDED,
        card(10),
        pos=True,
        amount=500,
        at=at(2027, 6, 1, "10:00"),
    ),
    Case(Reason.ALLOWED, card(1), pos=True, amount=500),
    Case(Reason.CARD_LOST, card(5), pos=True, amount=500),
    Case(
        Reason.PIN_REQUIRED,
        code(LEADER_PHONE, BREAKFAST),
        pos=True,
        amount=12_000,
        setup=phones(LEADER_PHONE),
    ),
]


def _door(store: Store, case: Case, clock: SetClock) -> TapLoop:
    uses = None
    if case.face is not None:
        uses = FaceUse(ScriptedFaces(case.face), None, seconds=1.0, retention=timedelta(0))  # type: ignore[arg-type]
    settings = DoorSettings(
        DOOR,
        "in",
        0.05,
        AntiPassback("hard", 60),
        face="always" if case.face is not None else "off",
        site=SITE,
    )
    loop = door_loop(store, settings, clock, faces=uses)
    loop.flow.mode = case.mode  # type: ignore[union-attr]
    return loop


def _pos(store: Store, case: Case, clock: SetClock) -> TapLoop:
    merchant, service = case.merchant
    settings = PosSettings(merchant, service, case.policy, site=SITE)
    return pos_loop(
        store,
        settings,
        clock,
        reader=SimReaderControl(),
        keys=SimKeypadControl(),
        display=SimDisplay(),
        degraded=lambda: case.degraded,
    )


def _tap(loop: TapLoop, clock: SetClock, case: Case) -> None:
    if case.amount is not None:
        loop.post(AmountEntered(case.amount))
    shown = isinstance(case.credential, QrPresented)
    loop.post(case.credential if shown else CardPresented(case.credential))  # type: ignore[arg-type]
    if case.pos:
        _settle_to_prompt(loop)
    else:
        settle(loop, clock)
    loop.post(QrRemoved() if shown else CardRemoved())


def _settle_to_prompt(loop: TapLoop) -> None:
    """A till stops at its prompt, as the dry run does: nobody answers here."""
    for _ in range(50):
        loop.turn(0)
        if not loop.pending:
            return


@pytest.mark.parametrize(
    "case",
    [*DOOR_CASES, FACE_PASSES, *POS_CASES],
    ids=lambda c: (
        f"{'pos' if c.pos else 'door'}-{c.reason}{'-face' if c.face else ''}"
        f"{'-qr' if isinstance(c.credential, QrPresented) else ''}"
    ),
)
def test_the_dry_run_decides_as_the_real_tap_does(store: Store, case: Case) -> None:
    seed(store)
    case.setup(store)
    clock = SetClock(case.at or (BREAKFAST if case.pos else MONDAY_9))
    loop = (_pos if case.pos else _door)(store, case, clock)
    if case.passback:
        _tap(loop, clock, replace(case, passback=False))
        clock.advance(timedelta(minutes=1))
    before = len(store.records())
    events_before = _events(store)
    dry = DryRunner(loop.flow, clock=clock, timezone=TZ, faces=loop.faces).run(
        case.credential, case.amount
    )
    assert len(store.records()) == before  # the dry run writes nothing
    _tap(loop, clock, case)
    real = loop.flow.last
    assert real is not None and dry.decision is not None
    assert dry.decision.reason is case.reason
    assert dry.decision == real.decision
    tapped = [r for r in store.records()[before:] if r["kind"] != "passage"]
    assert [(d.kind, d.decision, str(d.reason), d.credential) for d in dry.records] == [
        (r["kind"], r["decision"], r["reason"], r["credential"]) for r in tapped
    ]
    assert [e.type for e in dry.events] == _events(store)[len(events_before) :]
    assert dry.facts  # and it says why


def _events(store: Store) -> list[str]:
    with store.read() as conn:
        return [t for (t,) in conn.execute("SELECT type FROM events ORDER BY id")]


def test_every_reason_code_is_a_case_or_cannot_come_from_a_tap() -> None:
    covered = {c.reason for c in [*DOOR_CASES, *POS_CASES]} | set(NOT_FROM_A_TAP)
    assert set(Reason) - covered == set()
    assert covered & set(NOT_FROM_A_TAP) == set(NOT_FROM_A_TAP)
