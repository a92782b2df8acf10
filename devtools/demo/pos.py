"""The POS half of ``ykt demo``: a canteen POS through breakfast and lunch, then a shop POS.

Each POS is its own terminal with its own database (as on a real site), built from the demo
config with the door replaced by a merchant. Keys the cashier or customer would press are pressed
when the display asks for them.
"""

import queue
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from devtools.demo.site import (
    CANTEEN,
    DEMO_PIN,
    SHOP,
    SITE_TZ,
    card_number,
    holder_name,
    seed,
)
from drivers.interfaces import (
    AmountEntered,
    Cancelled,
    CorrectionRequested,
    KeypadEvent,
    PinEntered,
    Screen,
)
from models.cards import Genuineness, PresentedCard
from models.reasons import message_en
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock
from terminal.config import Config
from terminal.devices import SimControls
from terminal.flows.pos import PosOutcome


@dataclass(frozen=True)
class PosStep:
    when: datetime
    story: str
    card: int
    amount: int | None = None
    answer: tuple[str, KeypadEvent] | None = None  # press this when the display shows that
    correction: CorrectionRequested | None = None  # started on the keypad; ``card`` supervises


def pos_config(base: Config, state_dir: Path, merchant: str, service: str) -> Config:
    data: dict[str, Any] = base.model_dump(mode="json", exclude_none=True)
    for key in ("door", "gate"):
        data.pop(key, None)
    data["terminal"]["id"] = f"demo-pos-{merchant}"
    data["terminal"]["state_dir"] = str(state_dir)
    data["pos"] = {"merchant": merchant, "service": service, "prompt_timeout_seconds": 5}
    data["keypad"] = {"driver": "sim"}
    data["display"] = {"driver": "sim"}
    return config_module.parse(data)


def _print_screen(console: Console, screen: Screen) -> None:
    colour = {"ok": "green", "error": "red", "prompt": "yellow"}.get(screen.tone, "white")
    text = " | ".join((screen.headline, *screen.lines))
    console.print(f"      [{colour}]▌ {text}[/]")


def play(
    console: Console,
    base: Config,
    state_dir: Path,
    *,
    merchant: str,
    service: str,
    steps: tuple[PosStep, ...],
    first: int,
) -> bool:
    """Run one POS terminal through ``steps``; True when its journal verifies afterwards."""
    clock = SetClock(steps[0].when)
    sim = SimControls()
    app = App(pos_config(base, state_dir, merchant, service), clock=clock, sim=sim)
    outcomes: queue.Queue[PosOutcome] = queue.Queue()
    answers: list[tuple[str, KeypadEvent]] = []

    def on_screen(screen: Screen) -> None:
        _print_screen(console, screen)
        for wanted in list(answers):
            if screen.headline.startswith(wanted[0]):
                answers.remove(wanted)
                sim.keypad.press(wanted[1])

    sim.display.listeners.append(on_screen)
    assert app.pos_flow is not None
    app.pos_flow.listeners.append(outcomes.put)
    stop = threading.Event()
    try:
        seed(app.store)
        loop = threading.Thread(target=app.run, args=(stop,), name="pos-loop")
        loop.start()
        for number, step in enumerate(steps, start=first):
            clock.set(step.when)
            console.print(f"\n[bold]{number:2}. {step.story}[/]  [dim]{step.when:%H:%M}[/]")
            if step.answer is not None:
                answers.append(step.answer)
            if step.correction is not None:
                sim.keypad.press(step.correction)
            elif step.amount is not None:
                shown = len(sim.display.screens)
                sim.keypad.press(AmountEntered(step.amount))
                # The customer taps after the amount is on the display, as at a real till.
                while len(sim.display.screens) == shown:
                    stop.wait(0.01)
            sim.reader.present(PresentedCard(card_number(step.card), Genuineness.GENUINE, 1))
            outcome = outcomes.get(timeout=30)
            sim.reader.remove()
            decision = outcome.decision
            verdict = "[red]REFUSED[/]"
            if decision.allowed:
                verdict = "[green]REFUNDED[/]" if outcome.kind == "correction" else "[green]PAID[/]"
            console.print(
                f"      {verdict} {holder_name(decision.holder_id)}: {decision.reason} "
                f"({message_en(decision.reason)}), journal #{outcome.committed.seq}"
            )
        stop.set()
        loop.join()
        broken = app.store.verify_journal()
        console.print(
            f"  [dim]{merchant}: {len(app.store.records())} records, chain "
            f"{'verified' if broken is None else 'BROKEN'}[/]"
        )
        return broken is None
    finally:
        stop.set()
        app.close()


def _at(hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(2026, 11, 23, hour, minute, tzinfo=SITE_TZ)


def canteen_steps() -> tuple[PosStep, ...]:
    return (
        PosStep(_at("07:30"), "Canteen breakfast, fixed price: paid from the meal subsidy", 1),
        PosStep(_at("07:31"), "HR granted her work meals (工作餐): this breakfast is one", 2),
        PosStep(_at("07:33"), "A second breakfast in the same period: cash, no subsidy", 2),
        PosStep(_at("07:40"), "Left the unit (spend-only): pays cash, never the subsidy", 10),
        PosStep(_at("07:45"), "Official-reception card, issued for canteen-2 only", 9),
        PosStep(_at("07:50"), "A card reported lost", 5),
        PosStep(_at("12:05"), "Lunch is priced by the cashier: 25.00 entered", 3, amount=2500),
        PosStep(
            _at("12:05"),
            "Same card again seconds later: asks first, customer cancels",
            3,
            amount=2500,
            answer=("刚刚已扣款", Cancelled()),
        ),
        PosStep(
            _at("12:06"),
            "The lunch was 15.00: supervisor corrects the last payment",
            1,
            correction=CorrectionRequested("last", 1000),
        ),
    )


def shop_steps() -> tuple[PosStep, ...]:
    return (
        PosStep(
            _at("15:00"),
            "Shop, 120.00: above the password-free limit, PIN entered",
            1,
            amount=12_000,
            answer=("请输入密码", PinEntered(DEMO_PIN)),
        ),
        PosStep(_at("15:10"), "Shop, 50.00: not enough left in the purse", 2, amount=5000),
        PosStep(
            _at("15:20"),
            "Retiree's card is enabled for meals and barber, not the shop",
            4,
            amount=1000,
        ),
    )


def main(console: Console, base: Config, state_dir: Path, first: int) -> bool:
    console.print("\n[bold]Canteen POS[/] — canteen-1, simulated keypad and customer display")
    canteen_ok = play(
        console,
        base,
        state_dir / "canteen",
        merchant=CANTEEN,
        service="meal",
        steps=canteen_steps(),
        first=first,
    )
    console.print("\n[bold]Shop POS[/] — shop-1")
    shop_ok = play(
        console,
        base,
        state_dir / "shop",
        merchant=SHOP,
        service="shop",
        steps=shop_steps(),
        first=first + len(canteen_steps()),
    )
    return canteen_ok and shop_ok
