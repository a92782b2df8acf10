"""The door end to end with the real reader: ``App`` built from a real config, running its loop.

pyscard -> pcscd -> vpcd -> card (and PSAM) emulator processes on one side, the Sim gate on the
other, a real SQLite store seeded through ``terminal.store.allowlist`` in between. Each test
reads what the flow reported and what the journal holds afterwards.
"""

import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drivers.interfaces import PassageOutcome
from models.cards import Card, CardFault, Holder
from models.reasons import Reason
from models.schedule import HOLIDAY, AccessGroup, TimeWindow
from terminal.app import App
from terminal.config import Config, parse
from terminal.flows.door import FlowNotice, Notice, TapOutcome
from terminal.store import Store
from terminal.store.allowlist import (
    card_row,
    holder_row,
    set_holder_groups,
    upsert_cards,
    upsert_group,
    upsert_holders,
)

Emulators = Any  # conftest.Emulators; conftest is not importable under every import mode

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[3]
DOOR = "lab-door"
GROUP = "around-the-clock"
# A holder whose card was replaced twice: the registry knows issue 3, older cards are void.
REISSUED_NUMBER = "31000000000000054321"


def seed(db: Path, genuine_number: str) -> None:
    every_day = frozenset(range(1, HOLIDAY + 1))
    group = AccessGroup(GROUP, frozenset({DOOR}), (TimeWindow(every_day, 0, 24 * 60),))
    holders = [Holder("H-0001", "测试甲", "blue"), Holder("H-0002", "测试乙", "red")]
    cards = [
        Card(genuine_number, "H-0001", 1, "blue"),
        Card(REISSUED_NUMBER, "H-0002", 3, "red"),
    ]
    store = Store.open(db)
    try:
        with store.write() as conn:
            upsert_group(conn, group)
            upsert_holders(conn, [holder_row(h) for h in holders])
            upsert_cards(conn, [card_row(c) for c in cards])
            for holder in holders:
                set_holder_groups(conn, holder.id, [GROUP])
    finally:
        store.close()


def write_key_file(directory: Path, master_key: str) -> Path:
    path = directory / "card-keys.toml"
    path.write_text(f'[master_keys]\n1 = "{master_key}"\n')
    path.chmod(0o600)
    return path


def make_config(tmp_path: Path, emulators: Emulators, *, psam: bool = False) -> Config:
    key_store: dict[str, str]
    if psam:
        key_store = {"type": "psam", "reader_pattern": emulators.sam_reader}
    else:
        key_file = write_key_file(tmp_path, emulators.master_key)
        key_store = {"type": "software", "key_file": f"file:{key_file}"}
    return parse(
        {
            "terminal": {"id": "lab-gate-01", "site": "lab", "state_dir": str(tmp_path / "state")},
            "log": {"level": "info", "format": "text"},
            "door": {"id": DOOR, "direction": "in", "open_seconds": 2},
            "reader": {
                "driver": "pcsc",
                "reader_pattern": emulators.card_reader,
                "mode": "cpu",
                "key_store": key_store,
            },
            "cards": {"issuers": [emulators.issuer_id]},
            "gate": {"driver": "sim", "passage": "pass", "passage_delay_seconds": 0},
        }
    )


@dataclass
class RunningTerminal:
    """``App.run`` on a thread, with what its door flow reports collected on a queue."""

    app: App
    stop: threading.Event = field(default_factory=threading.Event)
    told: "queue.Queue[TapOutcome | FlowNotice]" = field(default_factory=queue.Queue)
    thread: threading.Thread | None = None

    def start(self) -> None:
        flow = self.app.door_flow
        assert flow is not None
        flow.listeners.append(self.told.put)
        self.thread = threading.Thread(
            target=self.app.run, args=(self.stop,), name="app-run", daemon=True
        )
        self.thread.start()

    def next_told(self, timeout: float = 5.0) -> TapOutcome | FlowNotice:
        try:
            return self.told.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(
                f"the flow reported nothing in {timeout} s; reader: {self.app.reader.health()}"
            )

    def outcome(self) -> TapOutcome:
        told = self.next_told()
        assert isinstance(told, TapOutcome), told
        return told

    def records(self) -> list[dict[str, Any]]:
        return self.app.store.records()

    def events(self) -> list[tuple[str, int | None, str | None]]:
        with self.app.store.read() as conn:
            rows = conn.execute("SELECT type, tx_seq, card FROM events ORDER BY id").fetchall()
        return [tuple(row) for row in rows]

    def close(self) -> None:
        self.stop.set()
        try:
            if self.thread is not None:
                self.thread.join(timeout=10)
                assert not self.thread.is_alive(), "App.run did not stop"
        finally:
            self.app.close()


@pytest.fixture
def run_terminal(emulators: Emulators) -> Iterator[Callable[[Config], RunningTerminal]]:
    running: list[RunningTerminal] = []

    def start(config: Config) -> RunningTerminal:
        seed(config.database_path, emulators.card_number)
        terminal = RunningTerminal(App(config))
        running.append(terminal)
        terminal.start()
        return terminal

    yield start
    for terminal in running:
        terminal.close()


def summary(records: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["kind"], r["decision"], r["reason"]) for r in records]


def assert_admitted(terminal: RunningTerminal, number: str) -> None:
    outcome = terminal.outcome()
    assert outcome.decision.allowed, outcome.decision
    assert outcome.passage is PassageOutcome.PASSED
    assert terminal.app.sim.gate.openings == ["in"]
    door, passage = terminal.records()
    assert summary([door, passage]) == [
        ("door", "allow", "allowed"),
        ("passage", "allow", "passage_confirmed"),
    ]
    assert (door["card"], door["holder_id"], door["door"]) == (number, "H-0001", DOOR)
    assert passage["ref"] == door["id"]
    assert terminal.app.store.verify_journal() is None


def test_genuine_card_opens_the_gate(
    tmp_path: Path, emulators: Emulators, run_terminal: Callable[[Config], RunningTerminal]
) -> None:
    terminal = run_terminal(make_config(tmp_path, emulators))
    emulators.card()

    assert_admitted(terminal, emulators.card_number)
    assert terminal.events() == []


def test_cloned_card_is_denied_and_raises_an_event(
    tmp_path: Path, emulators: Emulators, run_terminal: Callable[[Config], RunningTerminal]
) -> None:
    terminal = run_terminal(make_config(tmp_path, emulators))
    emulators.card("--cloned")

    outcome = terminal.outcome()
    assert outcome.decision.reason is Reason.CARD_NOT_GENUINE
    assert outcome.passage is None
    assert terminal.app.sim.gate.openings == []
    (record,) = terminal.records()
    assert summary([record]) == [("door", "deny", "card_not_genuine")]
    assert terminal.events() == [("cloned_card", record["seq"], emulators.card_number)]
    assert terminal.app.store.verify_journal() is None


def test_older_issue_of_a_reissued_card_is_denied(
    tmp_path: Path, emulators: Emulators, run_terminal: Callable[[Config], RunningTerminal]
) -> None:
    terminal = run_terminal(make_config(tmp_path, emulators))
    # A genuine card, but issue 2 of a number whose holder has since been given issue 3.
    emulators.card("--number", REISSUED_NUMBER, "--issue-seq", "2")

    outcome = terminal.outcome()
    assert outcome.decision.reason is Reason.CARD_REPLACED
    assert terminal.app.sim.gate.openings == []
    (record,) = terminal.records()
    assert summary([record]) == [("door", "deny", "card_replaced")]
    assert record["holder_id"] == "H-0002"
    assert [row[0] for row in terminal.events()] == ["replaced_card_used"]


@pytest.mark.parametrize(
    "tear_after", [0, 1, 2], ids=["during-select", "during-read", "during-authenticate"]
)
def test_torn_tap_records_nothing_and_a_retap_is_admitted(
    tmp_path: Path,
    emulators: Emulators,
    run_terminal: Callable[[Config], RunningTerminal],
    tear_after: int,
) -> None:
    terminal = run_terminal(make_config(tmp_path, emulators))
    # The card leaves on its (tear_after + 1)-th APDU and is tapped again 0.6 s later, longer
    # than one pcscd poll, so the reader sees it gone in between.
    emulators.card("--tear-after", str(tear_after), "--retap-after", "0.6")

    told = terminal.next_told()
    assert isinstance(told, FlowNotice), told
    assert told.notice is Notice.TAP_AGAIN
    assert terminal.records() == []
    assert terminal.app.sim.gate.openings == []

    assert_admitted(terminal, emulators.card_number)
    assert "2 taps, 1 incomplete" in terminal.app.reader.health().detail


def test_genuine_card_checked_by_the_psam(
    tmp_path: Path, emulators: Emulators, run_terminal: Callable[[Config], RunningTerminal]
) -> None:
    # The PSAM is in its slot before the terminal starts, as in a field unit.
    emulators.wait_in_field(emulators.sam())
    terminal = run_terminal(make_config(tmp_path, emulators, psam=True))
    emulators.card()

    assert_admitted(terminal, emulators.card_number)
    assert terminal.app.reader.health().state == "ready"


def test_card_of_another_application_is_unknown(
    tmp_path: Path, emulators: Emulators, run_terminal: Callable[[Config], RunningTerminal]
) -> None:
    terminal = run_terminal(make_config(tmp_path, emulators))
    # A CPU card of some other issuer: SELECT of our AID answers 6A82.
    emulators.card("--aid", "F0594B5499")

    outcome = terminal.outcome()
    assert isinstance(outcome.credential, CardFault)
    assert "6A82" in outcome.credential.detail
    assert outcome.decision.reason is Reason.CARD_UNKNOWN
    assert terminal.app.sim.gate.openings == []
    assert summary(terminal.records()) == [("door", "deny", "card_unknown")]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        # The same application and master key, but issued for another site: a stranger's card.
        (("--issuer-id", "5943484E000000FF"), Reason.CARD_ISSUER_UNKNOWN),
        # The chip says red (class code 2); the registry has this card as blue.
        (("--class-code", "2"), Reason.CARD_CLASS_MISMATCH),
        # A card keyed for another master-key id (a rotation half done): 6A88, not a clone.
        (("--key-id", "2"), Reason.CARD_KEY_UNKNOWN),
    ],
    ids=["foreign-issuer", "class-mismatch", "unknown-key-id"],
)
def test_a_card_that_disagrees_with_the_site_is_refused_for_that_reason_without_an_alarm(
    tmp_path: Path,
    emulators: Emulators,
    run_terminal: Callable[[Config], RunningTerminal],
    args: tuple[str, ...],
    reason: Reason,
) -> None:
    terminal = run_terminal(make_config(tmp_path, emulators))
    emulators.card(*args)

    outcome = terminal.outcome()
    assert outcome.decision.reason is reason, outcome.decision
    assert terminal.app.sim.gate.openings == []
    (record,) = terminal.records()
    assert summary([record]) == [("door", "deny", str(reason))]
    assert record["card"] == emulators.card_number
    assert terminal.events() == []  # no cloned_card alarm
    if reason is Reason.CARD_KEY_UNKNOWN:
        assert "6A88" in outcome.decision.detail


CONFIG_TOML = """
[terminal]
id = "lab-gate-02"
site = "lab"
state_dir = "{state}"
[diag]
socket = "{state}/diag.sock"
[log]
level = "info"
format = "text"
[door]
id = "{door}"
direction = "in"
open_seconds = 2
[reader]
driver = "pcsc"
reader_pattern = "{reader}"
mode = "cpu"
[reader.key_store]
type = "software"
key_file = "file:{key_file}"
[cards]
issuers = ["{issuer}"]
[gate]
driver = "sim"
passage = "pass"
passage_delay_seconds = 0
"""


def journal_count(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM journal").fetchone()[0])
    finally:
        conn.close()


def test_daemon_subprocess_admits_a_card_and_stops_on_sigterm(
    tmp_path: Path, emulators: Emulators
) -> None:
    state = tmp_path / "state"
    key_file = write_key_file(tmp_path, emulators.master_key)
    config = tmp_path / "gate.toml"
    config.write_text(
        CONFIG_TOML.format(
            state=state,
            door=DOOR,
            reader=emulators.card_reader,
            key_file=key_file,
            issuer=emulators.issuer_id,
        )
    )
    seed(state / "terminal.db", emulators.card_number)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30)
    log = tmp_path / "daemon.log"
    env = os.environ | {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "terminal", "run", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=env,
            cwd=tmp_path,
        )
    try:
        while not notify.recv(4096).decode().startswith("READY=1"):
            pass
        emulators.card()
        deadline = time.monotonic() + 15
        while journal_count(state / "terminal.db") < 2:
            assert time.monotonic() < deadline, f"no tap journalled; log:\n{log.read_text()}"
            assert process.poll() is None, f"the daemon exited; log:\n{log.read_text()}"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        notify.close()

    store = Store.open(state / "terminal.db")
    try:
        assert store.verify_journal() is None
        assert summary(store.records()) == [
            ("door", "allow", "allowed"),
            ("passage", "allow", "passage_confirmed"),
        ]
    finally:
        store.close()
    assert "card reader ready" in log.read_text()
