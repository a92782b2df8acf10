"""The sync act of ``ykt demo``: the gate and headquarters talking over a real MQTT broker.

A mosquitto on a free loopback port, the reference HQ (``ykt hq serve``'s server, in this process)
with a small site, and a fresh gate terminal that learns the site from HQ by snapshot. Then a card
reported lost at HQ is denied at the gate moments later, and the broker is stopped: taps go on
offline and queue up, and once the broker is back HQ acknowledges the whole backlog, nothing lost
and nothing doubled.

This act runs on the real clock, unlike the others: HQ signs its head with an expiry in real time
and the terminal judges freshness (degraded mode) against it, so a staged date would look stale.
The site's people may therefore pass at any hour.
"""

import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from devtools.demo.site import DOOR, SITE_TZ, card_number
from devtools.hq.db import HqDb
from devtools.hq.keyadmin import ROOT_KEY_NAME, make_root
from devtools.hq.office import Office
from devtools.hq.server import HqServer, ServeOptions
from devtools.mosquitto import BrokerStartError, Mosquitto, find_mosquitto
from models.cards import Genuineness, PresentedCard, mask_card_number
from models.reasons import Reason, message_en, message_zh
from sync.envelope import public_key_b64
from terminal import config as config_module
from terminal.app import App
from terminal.clock import SystemClock
from terminal.config import Config
from terminal.devices import SimControls
from terminal.flows.door import FlowNotice, TapOutcome
from terminal.store.sync_port import StoreSyncPort

WAIT_SECONDS = 20.0  # the longest any step waits for the network before the act gives up
INSTALL_HINT = "install mosquitto to see sync: ./dev demo installs it"


@dataclass(frozen=True)
class Person:
    holder_id: str
    name: str
    card_class: str
    card: int  # card_number(card) is the card's number

    @property
    def number(self) -> str:
        return card_number(self.card)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.card_class})"


# Card numbers apart from the first act's site, so the two never look like the same cards.
PEOPLE = (
    Person("S01", "马丽", "red", 101),
    Person("S02", "郑浩", "blue", 102),
    Person("S03", "冯雪", "gold", 103),
)
ALWAYS = "always"


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_SECONDS) -> float | None:
    """Seconds until ``condition`` held, or ``None`` if it did not within ``timeout``."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(0.005)


def build_hq(root: Path, site: str, port: int, today: datetime) -> None:
    """The demo site at HQ: a group that may use the east gate at any hour, three holders."""
    HqDb.create(root, site, "ykt/v1", f"127.0.0.1:{port}").close()
    db = HqDb(root)
    try:
        make_root(db, root / ROOT_KEY_NAME)  # the demo keeps it next to HQ; a site must not
        office = Office(db)
        office.upsert_group(
            {
                "id": ALWAYS,
                "doors": [DOOR],
                "windows": [{"days": list(range(1, 9)), "from": "00:00", "to": "24:00"}],
                "calendar": "",
            }
        )
        valid_from = (today - timedelta(days=365)).date().isoformat()
        valid_until = (today + timedelta(days=365)).date().isoformat()
        for person in PEOPLE:
            office.upsert_holder(
                {
                    "id": person.holder_id,
                    "name": person.name,
                    "unit": "示范中心",
                    "dept": "办公室",
                    "class": person.card_class,
                    "status": "active",
                    "valid_from": valid_from,
                    "valid_until": valid_until,
                    "groups": [ALWAYS],
                    "canteens": [],
                    "services": [],
                    "require_face": False,
                    "qr_keys": [],
                }
            )
            office.issue_card(person.holder_id, person.number)
    finally:
        db.close()


def sync_config(
    base: Config, state_dir: Path, port: int, hq_keys: dict[str, str], root_key: str | None
) -> Config:
    data: dict[str, Any] = base.model_dump(mode="json", exclude_none=True)
    data["terminal"]["state_dir"] = str(state_dir)
    data["sync"] = {
        "enabled": True,
        "broker_host": "127.0.0.1",
        "broker_port": port,
        "hq_keys": hq_keys,
        "hq_root_key": root_key,
        # The staged outage lasts seconds; the production waits (up to a minute before
        # reconnecting, 30 s before resending) would leave the audience staring at nothing.
        "reconnect_max_seconds": 1,
        "resend_seconds": 2,
        "resync_after_seconds": 1,
    }
    return config_module.parse(data)


@contextmanager
def _quiet_link() -> Iterator[None]:
    """The outage is staged: the link's "cannot reach the broker" warnings are expected here,
    and the narration already says what is going on. Errors still show."""
    link = logging.getLogger("sync")
    level = link.level
    link.setLevel(logging.ERROR)
    try:
        yield
    finally:
        link.setLevel(level)


class Act:
    """The running parts of the act and the narration of each step."""

    def __init__(
        self,
        console: Console,
        app: App,
        *,
        broker: Mosquitto,
        db: HqDb,
        pace: float,
        first: int,
    ) -> None:
        self.console = console
        self.app = app
        self.broker = broker
        self.db = db
        self.office = Office(db)
        self.pace = pace
        self.number = first
        self.port = StoreSyncPort(app.store, app.config.terminal.id)
        self.tid = app.config.terminal.id
        self.results: queue.Queue[TapOutcome | FlowNotice] = queue.Queue()
        assert app.door_flow is not None  # the demo config is a door terminal
        app.door_flow.listeners.append(self.results.put)

    # -- narration ------------------------------------------------------------------------------

    def step(self, story: str) -> None:
        self.console.print(f"\n[bold]{self.number:2}. {story}[/]")
        self.number += 1

    def say(self, text: str) -> None:
        self.console.print(f"      {text}")

    def fail(self, text: str) -> bool:
        self.console.print(f"      [bold red]{text}[/]")
        return False

    # -- what the terminal and HQ hold ----------------------------------------------------------

    def card_status(self, number: str) -> str | None:
        with self.app.store.read() as conn:
            row = conn.execute("SELECT status FROM cards WHERE number = ?", (number,)).fetchone()
        return None if row is None else str(row[0])

    def backlog(self) -> tuple[int, int]:
        stats = self.port.outbox_stats()
        return stats.tx_backlog, stats.event_backlog

    def connected(self) -> bool:
        return self.app.sync is not None and bool(self.app.sync.status()["connected"])

    # -- taps -----------------------------------------------------------------------------------

    def tap(self, person: Person, expected: Reason) -> bool:
        """Present ``person``'s card, narrate the decision; ``False`` unless it was ``expected``."""
        self.app.sim.reader.present(PresentedCard(person.number, Genuineness.GENUINE, issue_seq=1))
        try:
            message = self.results.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            return self.fail(f"no decision for {person.label} within {WAIT_SECONDS:.0f} s")
        finally:
            self.app.sim.reader.remove()
        if not isinstance(message, TapOutcome):
            return self.fail(f"the reader reported {message.notice} instead of a decision")
        decision = message.decision
        verdict = "[green]ALLOW[/]" if decision.allowed else "[red]DENY [/]"
        when = message.at.astimezone(SITE_TZ).strftime("%H:%M:%S")
        self.say(
            f"[dim]{when}[/]  {verdict} {person.label}, card {mask_card_number(person.number)}"
        )
        self.say(
            f"  reason [bold]{decision.reason}[/]: {message_zh(decision.reason)} / "
            f"{message_en(decision.reason)}"
        )
        if decision.alert is not None:
            self.say(f"  [bold red]security event:[/] {decision.alert}")
        if message.passage_reason is not None:
            self.say(f"  gate opened → {message_en(message.passage_reason).lower()}")
        self.say(f"  journal #{message.committed.seq} hash {message.committed.hash[:12]}…")
        time.sleep(self.pace)
        if decision.reason is not expected:
            return self.fail(f"expected {expected}, the terminal decided {decision.reason}")
        return True

    # -- the scenario ---------------------------------------------------------------------------

    def snapshot(self) -> bool:
        self.step("A fresh terminal joins: everything it knows comes from HQ")
        assert self.app.sync is not None
        started = time.monotonic()
        self.app.start_sync()
        head = self.db.head_seq()
        if wait_until(lambda: self.port.marks().change_seq >= head) is None:
            return self.fail(
                f"the terminal did not catch up with HQ within {WAIT_SECONDS:.0f} s "
                f"(terminal at change #{self.port.marks().change_seq}, HQ at #{head})"
            )
        took = time.monotonic() - started
        holders = self.app.store.counts()["holders"]
        how = "snapshot" if self.port.marks().snapshot_id is not None else "the change log"
        self.say(
            f"fresh terminal: [bold]{holders} holders arrived by {how} in {took * 1000:.0f} ms[/] "
            f"(connect, read HQ's signed head, ask, receive, check, swap in; change #{head})"
        )
        return holders == len(PEOPLE) or self.fail(f"expected {len(PEOPLE)} holders")

    def lost_card(self) -> bool:
        first, lost = PEOPLE[0], PEOPLE[1]
        self.step(f"{first.name} taps in: the allowlist came from HQ")
        if not self.tap(first, Reason.ALLOWED):
            return False
        self.step(f"{lost.name} calls the card office: card lost (挂失)")
        started = time.monotonic()
        self.office.set_status(lost.number, "lost")
        if wait_until(lambda: self.card_status(lost.number) == "lost") is None:
            return self.fail(
                f"the terminal did not hear of the lost card within {WAIT_SECONDS:.0f} s"
            )
        # Timed from before the office's commit: what a card holder on the phone would count.
        took = time.monotonic() - started
        self.say(
            f"HQ publishes a signed deny ahead of its other changes: [bold]denied at the gate "
            f"{took:.2f} s after HQ recorded the loss[/]"
        )
        self.step("Someone tries the lost card at the gate")
        if not self.tap(lost, Reason.CARD_LOST):
            return False
        return took < 1.0 or self.fail(f"the lost card took {took:.2f} s, more than a second")

    def outage(self) -> bool:
        # Start from an empty outbox, so the backlog shown below is the outage's alone.
        if wait_until(lambda: self.backlog() == (0, 0)) is None:
            tx, events = self.backlog()
            return self.fail(f"HQ has not acknowledged {tx} records and {events} events")
        journal = self.app.store.counts()["journal"]
        self.step("The broker goes down")
        self.say(f"so far HQ has acknowledged all {journal} journal records; stopping mosquitto")
        self.broker.stop()
        if wait_until(lambda: not self.connected()) is None:
            return self.fail("the terminal still thinks it is connected")
        self.say("[yellow]the terminal is offline[/]: it decides from its own allowlist")
        for story, person, expected in (
            ("Offline: a tap", PEOPLE[2], Reason.ALLOWED),
            ("Offline: another tap", PEOPLE[0], Reason.ALLOWED),
            ("Offline: the lost card again", PEOPLE[1], Reason.CARD_LOST),
        ):
            self.step(story)
            if not self.tap(person, expected):
                return False
        tx, events = self.backlog()
        self.say(
            f"[bold]outbox: {tx} journal records and {events} security event"
            f"{'' if events == 1 else 's'} waiting for HQ[/] (an admission is two records: "
            "the decision and the passage)"
        )
        return tx > 0 or self.fail("nothing queued while offline")

    def recovery(self) -> bool:
        self.step("The broker is back")
        started = time.monotonic()
        try:
            self.broker.start()
        except BrokerStartError as error:
            return self.fail(f"mosquitto did not start again: {error}")
        if wait_until(lambda: self.backlog() == (0, 0)) is None:
            tx, events = self.backlog()
            return self.fail(
                f"backlog not acknowledged within {WAIT_SECONDS:.0f} s: "
                f"{tx} records and {events} events still queued"
            )
        took = time.monotonic() - started
        self.say(f"[green]backlog acknowledged by HQ[/] {took:.1f} s after the broker came back")
        count, distinct, low, high = self.db.conn.execute(
            "SELECT count(*), count(DISTINCT id), coalesce(min(seq), 0), coalesce(max(seq), 0) "
            "FROM tx WHERE tid = ?",
            (self.tid,),
        ).fetchone()
        hq_events = self.db.conn.execute(
            "SELECT count(*) FROM events WHERE tid = ?", (self.tid,)
        ).fetchone()[0]
        counts = self.app.store.counts()
        self.say(
            f"HQ received {count} transaction records from {self.tid} (#{low}–#{high}, "
            f"{distinct} distinct) and {hq_events} security events"
        )
        self.say(
            f"the terminal's journal holds {counts['journal']} records and {counts['events']} "
            "security events"
        )
        whole = (
            count == distinct == counts["journal"]
            and (low, high) == (1, counts["journal"])
            and hq_events == counts["events"]
        )
        if not whole:
            return self.fail("HQ and the terminal disagree: something was lost or doubled")
        self.say("[green]nothing lost, nothing doubled[/]")
        return True

    def play(self) -> bool:
        return self.snapshot() and self.lost_card() and self.outage() and self.recovery()


def main(console: Console, base: Config, pace: float, first: int) -> bool:
    """Run the act; ``True`` when it succeeded or could not run for want of mosquitto."""
    console.print(
        "\n[bold]Sync with headquarters[/] — mosquitto on loopback, the reference HQ, a fresh gate"
    )
    binary = find_mosquitto()
    if binary is None:
        console.print(f"  [yellow]{INSTALL_HINT}[/]")
        return True
    with tempfile.TemporaryDirectory(prefix="ykt-demo-sync-") as scratch:
        root = Path(scratch)
        (root / "broker").mkdir()
        broker = Mosquitto(root / "broker", binary=binary)
        try:
            broker.start()
        except BrokerStartError as error:
            console.print(f"  [bold red]{error}[/]")
            return False
        try:
            return _run(console, base, pace=pace, first=first, root=root, broker=broker)
        finally:
            broker.stop()


def _run(
    console: Console, base: Config, *, pace: float, first: int, root: Path, broker: Mosquitto
) -> bool:
    site = base.terminal.site
    build_hq(root / "hq", site, broker.port, datetime.now(SITE_TZ))
    db = HqDb(root / "hq")
    signer = db.signer()
    config = sync_config(
        base,
        root / "terminal",
        broker.port,
        {signer.kid: public_key_b64(signer.public_key)},
        db.meta("root_pub"),
    )
    app: App | None = None
    server: HqServer | None = None
    stop = threading.Event()
    loop: threading.Thread | None = None
    try:
        app = App(config, clock=SystemClock(), sim=SimControls())
        assert app.sync is not None  # sync_config enables it
        Office(db).enroll(config.terminal.id, app.sync.public_key)
        console.print(
            f"  broker 127.0.0.1:{broker.port}; HQ site [bold]{site}[/]: {len(PEOPLE)} holders, "
            f"group '{ALWAYS}' (east-gate, any hour); terminal {config.terminal.id} enrolled with "
            f"key {app.sync.signer.kid}, its database empty"
        )
        server = HqServer(HqDb(root / "hq"), ServeOptions(port=broker.port))
        server.start()
        # HQ publishes its log and its retained head first, as a running site would have.
        if wait_until(lambda: int(db.meta("published_seq") or 0) == db.head_seq()) is None:
            console.print("  [bold red]HQ did not publish its change log[/]")
            return False
        # "Published" means handed to HQ's MQTT thread; let it reach the broker, so the log is
        # history by the time the terminal subscribes and the terminal must ask for a snapshot.
        time.sleep(0.5)
        loop = threading.Thread(target=app.run, args=(stop,), name="door-loop")
        loop.start()
        act = Act(console, app, broker=broker, db=db, pace=pace, first=first)
        with _quiet_link():
            ok = act.play()
        broken = app.store.verify_journal()
        if broken is not None:
            console.print(f"[red]Hash chain broken at #{broken.seq}: {broken.why}[/]")
        return ok and broken is None
    finally:
        stop.set()
        if loop is not None:
            loop.join()
        if app is not None:
            app.close()
        if server is not None:
            server.stop()
            server.db.close()
        db.close()
