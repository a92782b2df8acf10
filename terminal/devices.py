"""The devices a config names, built through explicit mappings from each section's ``driver``
(no discovery), and the handles on the simulated ones that the demo and tests drive. A real
device's section is its driver's settings, handed over as loaded."""

import logging
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from drivers.camera.interface import Camera
from drivers.camera.sim import SimCameraControl
from drivers.interfaces import CardReader, Display, Gate, Keypad, PassageOutcome, Screen
from drivers.pcsc import PcscCardReader, PcscSettings
from drivers.qr import open_reader
from drivers.qr.interface import QrReader
from drivers.qr.sim import SimQrReader
from drivers.sim import (
    ScriptError,
    ScriptStep,
    SimCardReader,
    SimDisplay,
    SimGate,
    SimGateControl,
    SimKeypad,
    SimKeypadControl,
    SimReaderControl,
    parse_script,
    parse_script_line,
    play_step,
)
from drivers.turnstile.board import SerialGate, SerialGateSettings
from models.errors import ConfigError
from terminal.config import (
    QrSection,
    SimDisplaySection,
    SimGateSection,
    SimKeypadSection,
    SimReaderSection,
)

logger = logging.getLogger(__name__)


@dataclass
class SimControls:
    """Handles on the simulated devices, for the demo and tests; unused with real hardware."""

    reader: SimReaderControl = field(default_factory=SimReaderControl)
    gate: SimGateControl = field(default_factory=SimGateControl)
    keypad: SimKeypadControl = field(default_factory=SimKeypadControl)
    display: SimDisplay = field(default_factory=SimDisplay)
    camera: SimCameraControl | None = None  # a camera.driver = "sim" terminal plays these frames
    qr: SimQrReader = field(default_factory=SimQrReader)  # codes a qr.driver = "sim" reads


def _play_stdin(sim: "SimControls") -> None:
    for lineno, line in enumerate(sys.stdin, start=1):
        try:
            step = parse_script_line(line, lineno)
        except ScriptError as exc:
            print(f"reader: {exc}", file=sys.stderr)
            continue
        if step is not None:
            play_step(sim.reader, step, sim.keypad)


def _play_file(sim: "SimControls", steps: Iterable[ScriptStep]) -> None:
    for step in steps:
        play_step(sim.reader, step, sim.keypad)


def _sim_reader(section: SimReaderSection, sim: SimControls) -> CardReader:
    reader = SimCardReader(sim.reader)
    if section.script == "-":
        threading.Thread(
            target=_play_stdin, args=(sim,), daemon=True, name="sim-reader-stdin"
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
            target=_play_file, args=(sim, steps), daemon=True, name="sim-reader-script"
        ).start()
    return reader


def _pcsc_reader(section: PcscSettings, sim: SimControls) -> CardReader:
    return PcscCardReader(section)


def _serial_gate(section: SerialGateSettings, sim: SimControls) -> Gate:
    return SerialGate(section)


def _sim_gate(section: SimGateSection, sim: SimControls) -> Gate:
    sim.gate.default = (
        PassageOutcome.PASSED if section.passage == "pass" else PassageOutcome.TIMEOUT
    )
    sim.gate.delay = section.passage_delay_seconds
    return SimGate(sim.gate)


READERS: dict[str, Callable[..., CardReader]] = {"sim": _sim_reader, "pcsc": _pcsc_reader}
GATES: dict[str, Callable[..., Gate]] = {"sim": _sim_gate, "serial": _serial_gate}


def _keypad(section: SimKeypadSection, sim: SimControls) -> Keypad:
    return SimKeypad(sim.keypad)


def _display(section: SimDisplaySection, sim: SimControls) -> Display:
    def log_screen(screen: Screen) -> None:
        logger.info("display: %s | %s", screen.headline, " | ".join(screen.lines))

    sim.display.listeners.append(log_screen)
    return sim.display


KEYPADS: dict[str, Callable[..., Keypad]] = {"sim": _keypad}
DISPLAYS: dict[str, Callable[..., Display]] = {"sim": _display}


def _sim_qr_reader(section: QrSection, camera: Camera | None, sim: SimControls) -> QrReader:
    return sim.qr


def _qr_reader(section: QrSection, camera: Camera | None, sim: SimControls) -> QrReader:
    return open_reader(section, camera)


# The camera decoder shares the face camera (None with faces off: open_reader says so).
QR_READERS: dict[str, Callable[[QrSection, Camera | None, SimControls], QrReader]] = {
    "sim": _sim_qr_reader,
    "camera": _qr_reader,
    "serial": _qr_reader,
}
