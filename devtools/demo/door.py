"""The door part of ``ykt demo``, and the demo's whole run (door, tills, faces, QR, sync).

The scenario sets the terminal's clock before each tap (Monday morning, a late evening, New Year's
Day), presents a card on the simulated reader, waits for the door flow to finish, and prints what
the terminal decided and why. Everything is recorded in a real SQLite journal, verified at the end.
"""

import queue
import sys
import tempfile
import threading
import tomllib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

from rich.console import Console

from devtools.demo import faces as demo_faces
from devtools.demo import pos as demo_pos
from devtools.demo import qr as demo_qr
from devtools.demo import sync as demo_sync
from devtools.demo.site import SITE_TZ, card_number, holder_name, seed
from drivers.interfaces import PassageOutcome
from drivers.sim import ScriptError, parse_script_line, play_step
from models.cards import CardFault, Genuineness, PresentedCard, mask_card_number
from models.reasons import message_en, message_zh
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SetClock, SystemClock
from terminal.config import Config
from terminal.devices import SimControls
from terminal.flows.door import FlowNotice, Notice, TapOutcome
from terminal.logs import setup_logging


def demo_config(state_dir: Path) -> Config:
    """The packaged demo config, with its state in ``state_dir``."""
    text = resources.files("devtools.demo").joinpath("demo.toml").read_text("utf-8")
    data = tomllib.loads(text)
    data["terminal"]["state_dir"] = str(state_dir)
    return config_module.parse(data)


@dataclass(frozen=True)
class Step:
    when: datetime
    story: str
    card: PresentedCard | CardFault
    nobody_passes: bool = False
    chatty: bool = False  # the reader reports the same card twice while it is held


def _at(day: int, month: int, year: int, hhmm: str) -> datetime:
    hour, minute = map(int, hhmm.split(":"))
    return datetime(year, month, day, hour, minute, tzinfo=SITE_TZ)


def _card(n: int, **kwargs: object) -> PresentedCard:
    return PresentedCard(card_number(n), Genuineness.GENUINE, **kwargs)  # type: ignore[arg-type]


SCENARIO = (
    Step(
        _at(23, 11, 2026, "08:52"), "Unit leader, gold card, Monday morning", _card(1, issue_seq=1)
    ),
    Step(
        _at(23, 11, 2026, "08:53"),
        "Staff member, red card — lets the gate time out",
        _card(2, issue_seq=1),
        nobody_passes=True,
    ),
    Step(
        _at(23, 11, 2026, "08:55"),
        "Seconded staff, blue card, left lying on the reader",
        _card(3, issue_seq=1),
        chatty=True,
    ),
    Step(
        _at(23, 11, 2026, "09:10"), "Retiree, green card: no office access", _card(4, issue_seq=1)
    ),
    Step(_at(23, 11, 2026, "09:12"), "A card reported lost last week", _card(5, issue_seq=1)),
    Step(
        _at(23, 11, 2026, "09:20"),
        "Visitor, temporary card that ended yesterday",
        _card(6, issue_seq=1),
    ),
    Step(
        _at(23, 11, 2026, "09:31"),
        "Old card of someone who got a replacement",
        _card(7, issue_seq=1),
    ),
    Step(_at(23, 11, 2026, "09:32"), "…and the replacement card", _card(17, issue_seq=2)),
    Step(
        _at(23, 11, 2026, "21:30"),
        "Contractor at 21:30, permitted 08:00–18:00 on weekdays",
        _card(8, issue_seq=1),
    ),
    Step(
        _at(23, 11, 2026, "21:40"),
        "A copy of the leader's card that fails authentication",
        PresentedCard(card_number(1), Genuineness.NOT_GENUINE),
    ),
    Step(_at(23, 11, 2026, "21:41"), "A card this site never issued", _card(999, issue_seq=1)),
    Step(_at(1, 1, 2027, "10:00"), "New Year's Day: staff member", _card(2, issue_seq=1)),
    Step(
        _at(1, 1, 2027, "10:05"),
        "New Year's Day: unit leader (holiday access)",
        _card(1, issue_seq=1),
    ),
)


def _describe(console: Console, step: Step, message: TapOutcome | FlowNotice) -> None:
    when = step.when.strftime("%Y-%m-%d %a %H:%M")
    card = step.card.number or "?"
    if isinstance(message, FlowNotice):
        console.print(
            f"    [dim]{when}[/]  card {mask_card_number(card)}: "
            f"[yellow]{message.notice}[/] — still on the reader, not counted again"
        )
        return
    decision = message.decision
    verdict = "[green]ALLOW[/]" if decision.allowed else "[red]DENY [/]"
    who = holder_name(decision.holder_id)
    console.print(f"    [dim]{when}[/]  {verdict} {who}, card {mask_card_number(card)}")
    console.print(
        f"      reason [bold]{decision.reason}[/]: {message_zh(decision.reason)} / "
        f"{message_en(decision.reason)}"
        + (f"  [dim]({decision.detail})[/]" if decision.detail else "")
    )
    if decision.alert is not None:
        console.print(f"      [bold red]security event:[/] {decision.alert}")
    if message.passage_reason is not None:
        passed = message.passage is PassageOutcome.PASSED
        console.print(
            f"      gate opened → {message_en(message.passage_reason).lower()}"
            + ("" if passed else " (recorded as not used)")
        )
    console.print(f"      journal #{message.committed.seq} hash {message.committed.hash[:12]}…")


def _play(app: App, clock: SetClock, console: Console, pace: float) -> None:
    console.print("\n[bold]Gate[/] — east-gate")
    results: queue.Queue[TapOutcome | FlowNotice] = queue.Queue()
    assert app.door_flow is not None
    app.door_flow.listeners.append(results.put)
    stop = threading.Event()
    loop = threading.Thread(target=app.run, args=(stop,), name="door-loop")
    loop.start()
    try:
        for number, step in enumerate(SCENARIO, start=1):
            clock.set(step.when)
            console.print(f"\n[bold]{number:2}. {step.story}[/]")
            if step.nobody_passes:
                app.sim.gate.next_outcome(PassageOutcome.TIMEOUT)
            app.sim.reader.present(step.card)
            _describe(console, step, results.get(timeout=30))
            if step.chatty:
                app.sim.reader.present(step.card)
                _describe(console, step, results.get(timeout=30))
            app.sim.reader.remove()
            stop.wait(pace)
    finally:
        stop.set()
        loop.join()


def _summary(app: App, console: Console) -> int:
    counts = app.store.counts()
    broken = app.store.verify_journal()
    console.print(
        f"\n[bold]Journal:[/] {counts['journal']} records ({counts['events']} security events), "
        f"{counts['outbox']} queued for upload to HQ."
    )
    if broken is None:
        console.print("[green]Hash chain verified[/]: every record links to the one before.")
        return 0
    console.print(f"[red]Hash chain broken at #{broken.seq}: {broken.why}[/]")
    return 1


def _interactive(app: App, console: Console) -> None:
    def show(message: TapOutcome | FlowNotice) -> None:
        if isinstance(message, TapOutcome):
            d = message.decision
            console.print(
                f"{'ALLOW' if d.allowed else 'DENY'} {holder_name(d.holder_id)} "
                f"{d.reason}: {message_zh(d.reason)} / {message_en(d.reason)}"
            )
        elif message.notice is not Notice.HELD:
            console.print(f"{message.notice}: {message.detail}")

    assert app.door_flow is not None
    app.door_flow.listeners.append(show)
    console.print(f"Type reader commands, e.g. [bold]tap {card_number(1)}[/] (Ctrl-D to finish).")
    stop = threading.Event()
    loop = threading.Thread(target=app.run, args=(stop,), name="door-loop")
    loop.start()
    try:
        for lineno, line in enumerate(sys.stdin, start=1):
            try:
                step = parse_script_line(line, lineno)
            except ScriptError as exc:
                console.print(f"[red]{exc}[/]")
                continue
            if step is not None:
                play_step(app.sim.reader, step)
    finally:
        stop.set()
        loop.join()


def main(*, interactive: bool = False, state_dir: Path | None = None, pace: float = 0.4) -> int:
    console = Console(highlight=False)
    with tempfile.TemporaryDirectory(prefix="ykt-demo-") as scratch:
        config = demo_config(state_dir or Path(scratch))
        setup_logging(config.log.level, config.log.format)
        clock = SetClock(SCENARIO[0].when)
        app = App(config, clock=SystemClock() if interactive else clock, sim=SimControls())
        try:
            seed(app.store)
            console.print(
                "[bold]一卡通 terminal demo[/] — door [bold]east-gate[/] (turnstile, inbound), "
                "simulated reader and gate,\n"
                f"real SQLite journal at {config.database_path}"
            )
            if interactive:
                _interactive(app, console)
                return _summary(app, console)
            _play(app, clock, console, pace)
            result = _summary(app, console)
        finally:
            app.close()
        pos_ok = demo_pos.main(console, config, config.terminal.state_dir, len(SCENARIO) + 1)
        first = len(SCENARIO) + 1 + len(demo_pos.canteen_steps()) + len(demo_pos.shop_steps())
        faces_ok = demo_faces.main(console, config, config.terminal.state_dir, first)
        first += demo_faces.STEPS
        qr_ok = demo_qr.main(console, config, config.terminal.state_dir, first)
        sync_ok = demo_sync.main(console, config, pace, first + demo_qr.STEPS)
        return result if pos_ok and faces_ok and qr_ok and sync_ok else 1
