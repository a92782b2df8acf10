"""Composition root: the one place that turns a config into running parts, in a fixed order.

Order of start: store (so a broken database stops us before any device is touched), reader, gate,
flow. Order of stop is the reverse. Drivers are chosen from the config's ``driver`` field through
the explicit mappings below; there is no discovery.
"""

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from drivers.interfaces import CardReader, Gate, PassageOutcome
from drivers.pcsc import PcscCardReader, PcscSettings
from drivers.sim import (
    ScriptError,
    ScriptStep,
    SimCardReader,
    SimGate,
    SimGateControl,
    SimReaderControl,
    parse_script,
    parse_script_line,
    play_step,
)
from drivers.turnstile.board import SerialGate, SerialGateSettings
from models.errors import ConfigError
from terminal.clock import Clock, SystemClock
from terminal.config import (
    Config,
    PcscReaderSection,
    PsamKeyStoreSection,
    SerialGateSection,
    SimGateSection,
    SimReaderSection,
    SoftwareKeyStoreSection,
    resolve_secret,
)
from terminal.flows.door import DoorFlow, DoorSettings
from terminal.sdnotify import Notifier
from terminal.store import Store

logger = logging.getLogger(__name__)


@dataclass
class SimControls:
    """Handles on the simulated devices, for the demo and tests; empty for real hardware."""

    reader: SimReaderControl = field(default_factory=SimReaderControl)
    gate: SimGateControl = field(default_factory=SimGateControl)


def _play_stdin(control: SimReaderControl) -> None:
    for lineno, line in enumerate(sys.stdin, start=1):
        try:
            step = parse_script_line(line, lineno)
        except ScriptError as exc:
            print(f"reader: {exc}", file=sys.stderr)
            continue
        if step is not None:
            play_step(control, step)


def _play_file(control: SimReaderControl, steps: Iterable[ScriptStep]) -> None:
    for step in steps:
        play_step(control, step)


def _sim_reader(section: SimReaderSection, sim: SimControls) -> CardReader:
    reader = SimCardReader(sim.reader)
    if section.script == "-":
        threading.Thread(
            target=_play_stdin, args=(sim.reader,), daemon=True, name="sim-reader-stdin"
        ).start()
    elif section.script:
        path = Path(section.script)
        try:
            steps = parse_script(path.read_text(encoding="utf-8").splitlines())
        except OSError as exc:
            raise ConfigError(f"reader.script: cannot read {path}: {exc}") from None
        except ScriptError as exc:
            raise ConfigError(f"reader.script: {path}: {exc}") from None
        threading.Thread(
            target=_play_file, args=(sim.reader, steps), daemon=True, name="sim-reader-script"
        ).start()
    return reader


def _pcsc_reader(section: PcscReaderSection, sim: SimControls) -> CardReader:
    key_store = section.key_store
    settings = PcscSettings(
        reader_pattern=section.reader_pattern,
        sam_reader_pattern=key_store.reader_pattern
        if isinstance(key_store, PsamKeyStoreSection)
        else None,
        mode=section.mode,
        aid=section.aid,
        key_id=section.key_id,
        key_file=resolve_secret(key_store.key_file)
        if isinstance(key_store, SoftwareKeyStoreSection)
        else None,
        apdu_timeout=section.apdu_timeout_ms / 1000,
    )
    return PcscCardReader(settings)


def _serial_gate(section: SerialGateSection, sim: SimControls) -> Gate:
    return SerialGate(
        SerialGateSettings(
            port=section.port,
            baudrate=section.baudrate,
            ack_timeout=section.ack_timeout_seconds,
            retries=section.retries,
            silence_timeout=section.silence_timeout_seconds,
        )
    )


def _sim_gate(section: SimGateSection, sim: SimControls) -> Gate:
    sim.gate.default = (
        PassageOutcome.PASSED if section.passage == "pass" else PassageOutcome.TIMEOUT
    )
    sim.gate.delay = section.passage_delay_seconds
    return SimGate(sim.gate)


READERS: dict[str, Callable[..., CardReader]] = {"sim": _sim_reader, "pcsc": _pcsc_reader}
GATES: dict[str, Callable[..., Gate]] = {"sim": _sim_gate, "serial": _serial_gate}


class App:
    """A running terminal: the store, the devices and the door flow wired together."""

    def __init__(
        self, config: Config, *, clock: Clock | None = None, sim: SimControls | None = None
    ) -> None:
        self.config = config
        self.sim = sim or SimControls()
        self.clock = clock or SystemClock()
        self.store = Store.open(config.database_path)
        try:
            self.reader = READERS[config.reader.driver](config.reader, self.sim)
            self.gate = GATES[config.gate.driver](config.gate, self.sim)
        except BaseException:
            self.store.close()
            raise
        door = config.door
        self.flow = DoorFlow(
            settings=DoorSettings(
                door.id, None if door.direction == "none" else door.direction, door.open_seconds
            ),
            reader=self.reader,
            gate=self.gate,
            store=self.store,
            clock=self.clock,
            timezone=ZoneInfo(config.terminal.timezone),
        )

    def run(self, stop: threading.Event, notifier: Notifier | None = None) -> None:
        """Handle taps until ``stop`` is set; a tap in progress always finishes first."""
        notifier = notifier or Notifier()
        interval = notifier.watchdog_interval
        last_ping = time.monotonic()
        while not stop.is_set():
            self.flow.poll(0.2)
            # Pinging from this loop (not a timer thread) means a hung tap stops the pings and
            # systemd restarts us, which is the point of the watchdog.
            if interval is not None and time.monotonic() - last_ping >= interval:
                notifier.watchdog()
                last_ping = time.monotonic()

    def close(self) -> None:
        for part in (self.gate, self.reader):
            try:
                part.close()
            except Exception:
                logger.exception("closing %s failed", type(part).__name__)
        self.store.close()
