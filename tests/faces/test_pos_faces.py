"""Face pay at the canteen and shop POS, end to end: the face key on a simulated keypad, real
photos played by the simulated camera, the real encoder, a real store seeded with the demo site.

Enrolled: H001 (张伟, gold) with Donald Rumsfeld's photo, H005 (陈静, whose only card is lost)
with Gerhard Schroeder's. Tony Blair is nobody here."""

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from drivers.camera.sim import SimCamera, SimCameraControl
from drivers.face.interface import Encoder
from drivers.interfaces import (
    AmountEntered,
    Cancelled,
    Confirmed,
    FacePayRequested,
    KeypadEvent,
    PinEntered,
    Screen,
)
from drivers.sim import SimDisplay, SimKeypadControl, SimReaderControl
from models.pos import PosPolicy
from models.reasons import Reason, message_zh
from models.wallet import MONEY_PURSES, Service
from terminal.clock import SetClock
from terminal.config.faces import CALIBRATED
from terminal.faces.evidence import FaceUse
from terminal.faces.verifier import FaceVerifier, VerifierSettings
from terminal.flows.pos import PosSettings, PosState
from terminal.store import Store
from terminal.store.allowlist import set_purse
from terminal.store.faces import FaceStore
from tests.faces.conftest import PERSON_A, PERSON_B, PERSON_C, photo_path
from tests.faces.test_verifier import FakeLiveness, enrol
from tests.factories import TZ, at, presented
from tests.fixtures import CANTEEN, DEMO_PIN, SHOP, card_number, seed
from tests.loops import pos_loop, settle

BREAKFAST = at(2026, 11, 23, "07:30")  # fixed price: 3.00 for a gold card
LUNCH = at(2026, 11, 23, "12:00")  # the cashier enters the amount
AFTERNOON = at(2026, 11, 23, "15:00")
HOLDER = PERSON_B[1]  # H001, another photo than the enrolled one
LOST = PERSON_C[1]  # H005
STRANGER = PERSON_A


class FaceTill:
    """A POS with a camera; ``encoder=None`` builds one where face pay is not set up."""

    def __init__(
        self,
        store: Store,
        encoder: Encoder | None,
        *,
        merchant: str = CANTEEN,
        service: Service = Service.MEAL,
        now: datetime = BREAKFAST,
        liveness: FakeLiveness | None = None,
        liveness_face_only: bool = False,
        prompt_timeout_s: float = 5.0,
    ) -> None:
        seed(store)
        self.store = store
        self.faces = FaceStore(store)
        self.camera = SimCameraControl(640, 480)
        self.pos_faces: FaceUse | None = None
        if encoder is not None:
            enrol(self.faces, encoder, "H001", PERSON_B[0])
            enrol(self.faces, encoder, "H005", PERSON_C[0])
            verify, identify = CALIBRATED[encoder.model_id]
            verifier = FaceVerifier(
                camera=SimCamera(self.camera),
                encoder=encoder,
                faces=self.faces,
                settings=VerifierSettings(verify, identify, liveness_face_only=liveness_face_only),
                liveness=liveness,
            )
            self.pos_faces = FaceUse(
                verifier, self.faces, seconds=5.0, retention=timedelta(days=30)
            )
        self.reader = SimReaderControl()
        self.keys = SimKeypadControl()
        self.display = SimDisplay()
        self.clock = SetClock(now)
        self.face_seconds = 5.0  # how long face pay looks for the customer
        self.settings = PosSettings(
            merchant, service, PosPolicy(), prompt_timeout_s=prompt_timeout_s
        )
        self.loop = pos_loop(store, self.settings, self.clock, reader=self.reader, keys=self.keys,
                             display=self.display, faces=self.pos_faces)  # fmt: skip
        self.flow = self.loop.flow

    def answer(self, headline: str, key: KeypadEvent) -> None:
        """Press ``key`` whenever the display shows ``headline``, as the customer would."""

        def on_screen(screen: Screen) -> None:
            if screen.headline.startswith(headline):
                self.keys.press(key)

        self.display.listeners.append(on_screen)

    def amount(self, fen: int) -> None:
        self.keys.press(AmountEntered(fen))
        settle(self.loop, self.clock)

    def face(self, *photos: str) -> None:
        """The customer stands at the camera and presses the face key."""
        self.camera.show_files([photo_path(p) for p in photos])
        self.keys.press(FacePayRequested())
        settle(self.loop, self.clock)

    def tap(self, n: int) -> None:
        self.reader.present(presented(card_number(n)))
        settle(self.loop, self.clock)
        self.reader.remove()
        settle(self.loop, self.clock)

    def headlines(self) -> list[str]:
        return [s.headline for s in self.display.screens]

    def screen(self, headline: str) -> Screen:
        return next(s for s in self.display.screens if s.headline == headline)

    def available(self, holder_id: str) -> int:
        view = self.store.pos_view_for_holder(
            holder_id,
            merchant_id=self.settings.merchant_id,
            service=self.settings.service,
            policy=self.settings.policy,
            now=self.clock.now().astimezone(TZ),
            degraded=False,
        )
        today = self.clock.now().astimezone(TZ).date()
        return sum(p.available(today) for p in view.purses if p.purse in MONEY_PURSES)

    def query(self, sql: str) -> list[tuple[object, ...]]:
        with self.store.read() as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture
def till(store: Store, onnx_encoder: Encoder) -> FaceTill:
    return FaceTill(store, onnx_encoder)


def test_recognised_and_confirmed_pays_from_the_holders_card(till: FaceTill) -> None:
    before = till.available("H001")
    till.answer("确认支付", Confirmed())
    till.face(HOLDER)
    [record] = till.store.records()
    assert (record["decision"], record["reason"], record["amount"]) == ("allow", "allowed", 300)
    assert (record["credential"], record["holder_id"]) == ("face", "H001")
    assert record["card"] == card_number(1)
    assert isinstance(record["face_score"], int) and record["face_score"] >= 951
    assert till.available("H001") == before - 300
    assert till.headlines() == ["请看摄像头", "确认支付？", "支付成功 Paid"]
    asked = till.screen("确认支付？")
    assert asked.lines[0] == "张*" and "3.00 元" in asked.lines[1]
    assert asked.lines[-1] == "OK to pay"
    assert till.faces.stills() == []  # an ordinary payment keeps no image


@pytest.mark.parametrize("answer", [Cancelled(), None], ids=["cancelled", "timed-out"])
def test_an_unconfirmed_face_payment_charges_nothing(
    store: Store, onnx_encoder: Encoder, answer: KeypadEvent | None
) -> None:
    till = FaceTill(store, onnx_encoder, prompt_timeout_s=0.5)
    if answer is not None:
        till.answer("确认支付", answer)
    before = till.available("H001")
    till.face(HOLDER)
    [record] = till.store.records()
    assert (record["decision"], record["reason"]) == ("deny", "cancelled_by_user")
    assert (record["credential"], record["holder_id"]) == ("face", "H001")
    assert till.available("H001") == before
    assert till.query("SELECT count(*) FROM pending_debits") == [(0,)]
    assert till.headlines()[-1] == message_zh(Reason.CANCELLED_BY_USER)


def test_a_stranger_is_not_journalled_and_the_amount_waits_for_a_card(
    store: Store, onnx_encoder: Encoder
) -> None:
    till = FaceTill(store, onnx_encoder, now=LUNCH)
    till.face(HOLDER)  # lunch is priced by the cashier: no amount, no camera
    assert till.headlines() == ["请先输入金额"]
    assert till.pos_faces is not None
    till.flow.settings = replace(till.settings, face_seconds=1.5)
    till.amount(1250)
    till.face(*STRANGER)
    assert till.store.records() == []
    assert till.headlines()[-1] == message_zh(Reason.FACE_UNKNOWN)
    assert till.flow.state is PosState.AMOUNT
    till.tap(3)  # the customer pays by card instead
    [record] = till.store.records()
    assert (record["credential"], record["amount"]) == ("card", 1250)


def test_without_faces_configured_face_pay_is_refused(store: Store) -> None:
    till = FaceTill(store, None)
    till.keys.press(FacePayRequested())
    settle(till.loop, till.clock)
    assert till.display.screens == [
        Screen("本机未开通刷脸支付", ("Face pay is not available here",), "error")
    ]
    assert till.store.records() == []


def test_a_holder_whose_card_is_lost_still_pays_by_face(till: FaceTill) -> None:
    # RULES.md "Credentials and standing": the lost card is void, the holder's account is not.
    with till.store.write() as conn:
        conn.execute("UPDATE holders SET services = '[\"meal\"]' WHERE id = 'H005'")
        set_purse(conn, "H005", "cash", 5000)
    before = till.available("H005")
    till.answer("确认支付", Confirmed())
    till.face(LOST)
    [record] = till.store.records()
    assert (record["decision"], record["reason"]) == ("allow", "allowed")
    assert (record["credential"], record["holder_id"]) == ("face", "H005")
    assert "card" not in record  # the lost card is not what paid
    assert till.headlines()[-2:] == ["确认支付？", "支付成功 Paid"]
    assert till.available("H005") == before - record["amount"]  # type: ignore[operator]
    # Nobody presented the lost card: its holder stood at the camera.
    assert till.query("SELECT count(*) FROM events") == [(0,)]
    # A second face payment at once is a duplicate, though no card was involved.
    till.answer("刚刚已扣款", Cancelled())
    till.face(LOST)
    assert till.store.records()[-1]["reason"] == "cancelled_by_user"


def test_liveness_required_but_not_configured_journals_nothing(
    store: Store, onnx_encoder: Encoder
) -> None:
    till = FaceTill(store, onnx_encoder, liveness_face_only=True)
    till.face(HOLDER)
    assert till.store.records() == []
    assert till.headlines() == ["请看摄像头", message_zh(Reason.FACE_UNAVAILABLE)]


def test_a_face_that_fails_liveness_is_refused_with_a_spoof_event_and_a_still(
    store: Store, onnx_encoder: Encoder
) -> None:
    liveness = FakeLiveness(live=False)
    till = FaceTill(store, onnx_encoder, liveness=liveness, liveness_face_only=True)
    till.answer("确认支付", Confirmed())
    till.face(HOLDER)
    assert liveness.calls == 1
    [record] = till.store.records()
    assert (record["decision"], record["reason"]) == ("deny", "face_not_live")
    assert (record["credential"], record["holder_id"]) == ("face", "H001")
    assert isinstance(record["face_score"], int)
    assert till.query("SELECT type FROM events") == [("face_spoof",)]
    assert [kind for _, kind, _ in till.faces.stills("H001")] == ["face_spoof"]
    assert "确认支付？" not in till.headlines()


def test_a_face_payment_above_the_pin_free_limit_is_confirmed_before_the_pin(
    store: Store, onnx_encoder: Encoder
) -> None:
    till = FaceTill(store, onnx_encoder, merchant=SHOP, service=Service.SHOP, now=AFTERNOON)
    till.answer("确认支付", Confirmed())
    till.answer("请输入密码", PinEntered(DEMO_PIN))
    till.amount(12_000)  # gold: a PIN above 100.00
    till.face(HOLDER)
    [record] = till.store.records()
    assert (record["decision"], record["amount"], record["credential"]) == ("allow", 12_000, "face")
    # Whoever was taken for H001 sees the name before being asked for H001's PIN.
    assert till.headlines()[-4:] == ["请看摄像头", "确认支付？", "请输入密码", "支付成功 Paid"]
    assert "120.00 元" in till.screen("确认支付？").lines[1]


def test_a_second_face_payment_at_once_asks_like_a_second_tap(till: FaceTill) -> None:
    till.answer("确认支付", Confirmed())
    till.answer("刚刚已扣款", Cancelled())
    till.face(HOLDER)
    till.face(HOLDER)
    first, second = till.store.records()
    assert first["decision"] == "allow"
    assert (second["decision"], second["reason"]) == ("deny", "cancelled_by_user")
    assert till.query("SELECT count(*) FROM pending_debits") == [(1,)]
