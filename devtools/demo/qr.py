"""The electronic-card act of ``ykt demo``: a phone's QR code at the gate and at the canteen.

陈静 reported her card lost last week. HQ enrols her phone's key (the reference HQ's
``qr keygen`` makes it; the holder.upsert carrying it is applied through the sync port, as an
HQ message would be), and she walks in with the code: the card is void, she is not. The same
code shown again is a replay, a code from a minute ago has expired, and once she reports the
phone lost too and HQ revokes its key, its codes are refused at once. Then a breakfast at the
canteen paid with 张伟's code. Codes are handed to the tap loop as a QR reader hands them over.
"""

import queue
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console

from devtools.demo.pos import pos_config
from devtools.demo.site import CANTEEN, PEOPLE, SITE_TZ, card_number, holder_name, seed
from devtools.hq.qr import make_token
from models.cards import Genuineness, PresentedCard
from models.reasons import message_en, message_zh
from sync.changes import parse_batch
from sync.envelope import public_key_b64
from sync.keys import key_id
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.config import Config
from terminal.devices import SimControls
from terminal.flows.door import FlowNotice, TapOutcome
from terminal.flows.pos import PosOutcome
from terminal.store import Store
from terminal.store.sync_port import StoreSyncPort

STEPS = 6  # numbered steps this act prints, so the next act goes on counting
LOST_CARD = "H005"  # 陈静: her card 5 was reported lost
LEADER = "H001"


def _at(hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(2026, 11, 24, hour, minute, tzinfo=SITE_TZ)


def _upsert(holder_id: str, qr_keys: list[dict[str, str]]) -> dict[str, Any]:
    """The holder.upsert HQ sends for a demo holder, with these QR keys."""
    for holder, groups, _ in PEOPLE:
        if holder.id == holder_id:
            body: dict[str, Any] = {
                "id": holder.id,
                "name": holder.name,
                "class": holder.card_class,
                "status": str(holder.status),
                "groups": list(groups),
                "canteens": sorted(holder.canteens),
                "services": sorted(holder.services),
                "require_face": holder.require_face,
                "qr_keys": qr_keys,
            }
            if holder.valid_until is not None:
                body["valid_until"] = holder.valid_until.isoformat()
            if holder.pin_hash is not None:
                body["pin_hash"] = holder.pin_hash
            return body
    raise KeyError(holder_id)


class _Hq:
    """What HQ sends this terminal, applied as the sync worker applies it."""

    def __init__(self, store: Store, tid: str) -> None:
        self.port = StoreSyncPort(store, tid)
        self.seq = store.view_seq

    def holder(self, holder_id: str, keys: dict[str, Ed25519PrivateKey]) -> None:
        listed = [{"k": k, "pub": public_key_b64(key.public_key())} for k, key in keys.items()]
        self.seq += 1
        change = {"seq": self.seq, "kind": "holder.upsert", "holder": _upsert(holder_id, listed)}
        parsed = parse_batch({"from": self.seq, "to": self.seq, "changes": [change]})
        self.port.apply_batch(parsed.first, parsed.last, parsed.changes)


def _phone() -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    return key_id(key.public_key(), "q-"), key


def _code(key: Ed25519PrivateKey, holder_id: str, k: str, when: datetime, age: int = 0) -> str:
    return make_token(key, holder_id, k, now=int(when.timestamp()) - age)


def _say(console: Console, message: TapOutcome | PosOutcome | FlowNotice) -> None:
    if isinstance(message, FlowNotice):
        console.print(f"      [yellow]{message.notice}[/] {message.detail}")
        return
    decision = message.decision
    verdict = "[green]ALLOW[/]" if decision.allowed else "[red]DENY [/]"
    if isinstance(message, PosOutcome) and decision.allowed:
        verdict = "[green]PAID [/]"
    console.print(
        f"    {verdict} {holder_name(decision.holder_id)}, credential {decision.credential}"
    )
    console.print(
        f"      reason [bold]{decision.reason}[/]: {message_zh(decision.reason)} / "
        f"{message_en(decision.reason)}"
        + (f"  [dim]({decision.detail})[/]" if decision.detail else "")
    )
    if decision.alert is not None:
        console.print(f"      [bold red]security event:[/] {decision.alert}")
    console.print(f"      journal #{message.committed.seq}")


# Codes come through the simulated reader, as the face camera's decoder would hand them over.
QR = {"enabled": True, "driver": "sim"}


def _gate(console: Console, base: Config, state_dir: Path, first: int) -> bool:
    clock = SetClock(_at("08:40"))
    data = base.model_dump(mode="json", exclude_none=True)
    data["terminal"]["state_dir"] = str(state_dir)
    data["qr"] = QR
    app = App(config_module.parse(data), clock=clock, sim=SimControls())
    told: queue.Queue[TapOutcome | FlowNotice] = queue.Queue()
    assert app.door_flow is not None
    app.door_flow.listeners.append(lambda m: told.put(m) if isinstance(m, TapOutcome) else None)
    stop = threading.Event()
    try:
        seed(app.store)
        hq = _Hq(app.store, base.terminal.id)
        k, phone = _phone()
        hq.holder(LOST_CARD, {k: phone})
        console.print(f"  HQ enrolled 陈静's phone: key {k}, published in her holder.upsert")
        loop = threading.Thread(target=app.run, args=(stop,), name="qr-gate-loop")
        loop.start()
        fresh = _code(phone, LOST_CARD, k, _at("08:41"))
        steps: list[tuple[str, str, Any]] = [
            ("08:40", "Her card, reported lost last week", "card"),
            ("08:41", "The code on her phone (电子卡): the card is void, she is not", fresh),
            ("08:41", "The same code shown again (a screenshot passed on)", fresh),
            ("08:43", "A code she opened a minute ago", _code(phone, LOST_CARD, k, _at("08:42"))),
        ]
        number = first
        for hhmm, story, shown in steps:
            clock.set(_at(hhmm) + timedelta(seconds=10))
            console.print(f"\n[bold]{number:2}. {story}[/]")
            number += 1
            if shown == "card":
                app.sim.reader.present(PresentedCard(card_number(5), Genuineness.GENUINE, 1))
                _say(console, told.get(timeout=30))
                app.sim.reader.remove()
                continue
            app.sim.qr.show(shown, source="camera")
            _say(console, told.get(timeout=30))
            app.sim.qr.hide()
        hq.holder(LOST_CARD, {})
        clock.set(_at("09:05"))
        console.print(f"\n[bold]{number:2}. She reports the phone lost too; HQ revokes key {k}[/]")
        app.sim.qr.hide()
        app.sim.qr.show(_code(phone, LOST_CARD, k, _at("09:05")), source="camera")
        _say(console, told.get(timeout=30))
        stop.set()
        loop.join()
        return app.store.verify_journal() is None
    finally:
        stop.set()
        app.close()


def _canteen(console: Console, base: Config, state_dir: Path, number: int) -> bool:
    clock = SetClock(_at("07:35"))
    till = pos_config(base, state_dir, CANTEEN, "meal").model_dump(mode="json", exclude_none=True)
    app = App(config_module.parse(till | {"qr": QR}), clock=clock, sim=SimControls())
    paid: queue.Queue[PosOutcome] = queue.Queue()
    assert app.pos_flow is not None
    app.pos_flow.listeners.append(paid.put)
    stop = threading.Event()
    try:
        seed(app.store)
        k, phone = _phone()
        _Hq(app.store, app.config.terminal.id).holder(LEADER, {k: phone})
        loop = threading.Thread(target=app.run, args=(stop,), name="qr-pos-loop")
        loop.start()
        console.print(f"\n[bold]{number:2}. Canteen breakfast paid with 张伟's phone code[/]")
        app.sim.qr.show(_code(phone, LEADER, k, _at("07:35")), source="camera")
        outcome = paid.get(timeout=30)
        _say(console, outcome)
        payment = outcome.decision.payment
        if payment is not None:
            split = ", ".join(f"{purse} {amount}" for purse, amount in payment.split)
            console.print(f"      {payment.amount} fen from {split}")
        stop.set()
        loop.join()
        return app.store.verify_journal() is None
    finally:
        stop.set()
        app.close()


def main(console: Console, base: Config, state_dir: Path, first: int) -> bool:
    console.print("\n[bold]Electronic card[/] — a phone's QR code at east-gate, then the canteen")
    gate_ok = _gate(console, base, state_dir / "qr-gate", first)
    canteen_ok = _canteen(console, base, state_dir / "qr-canteen", first + STEPS - 1)
    ok = gate_ok and canteen_ok
    console.print(f"  [dim]electronic-card journals: chain {'verified' if ok else 'BROKEN'}[/]")
    return ok
