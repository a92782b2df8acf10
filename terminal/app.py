"""Composition root: the one place that turns a config into running parts, in a fixed order.

Order of start: store (so a broken database stops us before any device is touched), reader, then
the gate (door terminals) or keypad and display (POS), then the flow and the tap loop that drives
it (terminal/loop.py). Order of stop is the reverse. Drivers are chosen from the config's
``driver`` field through the explicit mappings below; there is no discovery.
"""

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from drivers.interfaces import CardReader, Display, Gate, Health, Keypad
from models.door import AntiPassback
from models.errors import StoreError, TerminalError
from models.pos import PosPolicy
from models.wallet import Service
from sync.service import SyncService
from terminal import __version__, restart
from terminal.clock import CLOCK_STEP_TOLERANCE_S, Clock, SystemClock
from terminal.config import (
    Config,
    PcscReaderSection,
    PsamKeyStoreSection,
)
from terminal.config.sync import sync_settings
from terminal.devices import DISPLAYS, GATES, KEYPADS, READERS, SimControls
from terminal.diag.facts import clock_facts, clock_state, disk_facts, disk_state
from terminal.door_mode import DoorModes
from terminal.faces.build import FaceParts, build_face_parts
from terminal.faces.evidence import FaceUse
from terminal.faces.watch import FaceWatch
from terminal.flows.door import DoorFlow, DoorSettings
from terminal.flows.pos import PosFlow, PosSettings
from terminal.loop import TapLoop
from terminal.privacy import PinKeys, PinKeySource
from terminal.remote import RemoteCommands
from terminal.sdnotify import Notifier
from terminal.store import Store, salvage
from terminal.store.faces import FaceStore
from terminal.store.keeping import Keeping, enforce
from terminal.store.sync_port import StoreSyncPort

logger = logging.getLogger(__name__)
# What HQ's diag_bundle answers, given to the App at build time by whoever has diag (the daemon).
BundleFactory = Callable[[Config, SyncService | None], Mapping[str, Any]]


class App:
    """A running terminal: the store, the devices, one flow (door or POS) and the tap loop."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        sim: SimControls | None = None,
        config_path: Path | None = None,
        threaded: bool = True,
        bundle: BundleFactory | None = None,
    ) -> None:
        self.config = config
        self._bundle = bundle
        self.sim = sim or SimControls()
        self.clock = clock or SystemClock()
        self.timezone = ZoneInfo(config.terminal.timezone)
        self.threaded = threaded
        self.door_flow: DoorFlow | None = None
        self.pos_flow: PosFlow | None = None
        self.door_modes: DoorModes | None = None
        self.face_parts: FaceParts | None = None
        self.face_watch: FaceWatch | None = None
        self.gate: Gate | None = None
        self.display: Display | None = None
        self._housekeeper: threading.Thread | None = None
        self._stopping = threading.Event()
        self._devices: list[Gate | CardReader | Keypad | Display] = []
        self.store = Store.open(config.database_path)
        self.sync: SyncService | None = None
        self.remote = RemoteCommands(
            door=None,
            config_path=config_path,
            bundle=self._support_bundle if bundle is not None else None,
        )
        self.pin_keys = PinKeys(self.store)  # sealed PIN hashes are checked with its key
        sealing = config.pos is not None and config.pin_key_id is not None
        self.keeping = Keeping(
            faces=config.faces.enabled,
            full_names=config.privacy.full_names,
            pins=config.pos is not None,
            pin_key=self.pin_keys if sealing else None,
        )
        try:
            self._keep_only_what_is_kept()
            if config.sync.enabled:
                self.sync = SyncService(
                    sync_settings(
                        config.sync,
                        tid=config.terminal.id,
                        site=config.terminal.site,
                        state_dir=config.terminal.state_dir,
                        software_version=__version__,
                    ),
                    StoreSyncPort(self.store, config.terminal.id, keeping=self.keeping),
                    commands=self._command,
                    health=self._health,
                )
            if config.faces.enabled:
                self.face_parts = build_face_parts(config.faces, self.store, self.sim.camera)
                self.face_parts.enrol_pending(self.clock.now())
            self.reader = READERS[config.reader.driver](config.reader, self.sim)
            self._devices.append(self.reader)
            keystore = getattr(self.reader, "key_store", None)
            if sealing and keystore is not None and config.pin_key_id is not None:
                self.pin_keys.source = PinKeySource(keystore, config.pin_key_id)
                self.pin_keys.adopt()
            self.loop = self._door() if config.door is not None else self._pos()
            self.flow: DoorFlow | PosFlow = self.loop.flow
            self._settle_what_a_crash_left()
            self.remote.post, self.remote.submit = self.loop.post, self.loop.submit
        except BaseException:
            self.close()
            raise

    def _keep_only_what_is_kept(self) -> None:
        """What an earlier configuration or version kept and this one does not goes now
        (docs/privacy.md); what it dropped and this one keeps comes back with HQ's snapshot."""
        try:
            enforce(self.store, self.keeping)
        except StoreError as exc:  # a full disk: taps go on, and the next start tries again
            logger.error("could not remove what this terminal does not keep: %s", exc)

    def _settle_what_a_crash_left(self) -> None:
        door = self.config.door
        try:
            if door is not None:
                restart.settle_unknown_passages(
                    self.store, self.clock, self.timezone, door.id, door.direction
                )
            elif self.display is not None:
                notice = restart.last_payment_notice(self.store, self.clock.now(), self.timezone)
                if notice is not None:
                    self.display.show(notice)
        except StoreError as exc:  # a full disk: owed again at the next start
            logger.error("could not settle what the last run left: %s", exc)

    def _face_use(self, seconds: float) -> FaceUse | None:
        if self.face_parts is None:
            return None
        return FaceUse(
            self.face_parts.verifier,
            self.face_parts.faces,
            seconds=seconds,
            retention=self.config.faces.still_retention,
        )

    def _door(self) -> TapLoop:
        door, gate_section = self.config.door, self.config.gate
        assert door is not None and gate_section is not None  # the config validator ensures it
        self.gate = gate = GATES[gate_section.driver](gate_section, self.sim)
        self._devices.append(gate)
        section = self.config.faces
        faces = self._face_use(section.card_face_seconds)
        if faces is not None and door.face_only:
            self.face_watch = FaceWatch(
                faces.verifier,
                faces.faces,
                seconds=section.identify_seconds,
                repeat_seconds=section.repeat_seconds,
                retention=section.still_retention,
            )
        self.door_flow = DoorFlow(
            settings=DoorSettings(
                door.id,
                None if door.direction == "none" else door.direction,
                door.open_seconds,
                AntiPassback(door.anti_passback, door.anti_passback_minutes),
                face=door.face,
                face_seconds=section.card_face_seconds,
                site=self.config.cards.site_cards(),
            ),
            store=self.store,
            face_checks=faces is not None and door.face != "off",
        )
        self.door_modes = DoorModes(self.door_flow, gate, self.store, self.clock)
        self.door_modes.restore()
        self.remote.door = self.door_modes
        return TapLoop(
            self.door_flow,
            store=self.store,
            clock=self.clock,
            timezone=self.timezone,
            reader=self.reader,
            gate=gate,
            faces=faces,
            watch=self.face_watch,
            threaded=self.threaded,
        )

    def _pos(self) -> TapLoop:
        pos, keypad_section, display_section = (
            self.config.pos,
            self.config.keypad,
            self.config.display,
        )
        assert pos is not None and keypad_section is not None and display_section is not None
        keypad = KEYPADS[keypad_section.driver](keypad_section, self.sim)
        self.display = display = DISPLAYS[display_section.driver](display_section, self.sim)
        self._devices += [keypad, display]
        section = self.config.faces
        faces = self._face_use(section.identify_seconds) if pos.face_pay else None
        self.pos_flow = PosFlow(
            settings=PosSettings(
                pos.merchant,
                Service(pos.service),
                PosPolicy(
                    duplicate_window_s=pos.duplicate_window_seconds,
                    pin_max_failures=pos.pin_max_failures,
                    offline_per_terminal=None
                    if pos.offline_limit_fen == "none"
                    else pos.offline_limit_fen,
                    max_amount=pos.max_amount_fen,
                ),
                amount_timeout_s=pos.amount_timeout_seconds,
                prompt_timeout_s=pos.prompt_timeout_seconds,
                face_seconds=section.identify_seconds,
                site=self.config.cards.site_cards(),
            ),
            store=self.store,
            degraded=self._degraded,
            face_pay=faces is not None,
            pin_key=self.pin_keys,
        )
        return TapLoop(
            self.pos_flow,
            store=self.store,
            clock=self.clock,
            timezone=self.timezone,
            reader=self.reader,
            keypad=keypad,
            display=display,
            faces=faces,
            threaded=self.threaded,
        )

    def _degraded(self) -> bool:
        """Money is held to the offline caps: HQ's head has run out, or the clock can't be
        trusted (set back behind the journal, and no fresh head from HQ vouches for it)."""
        if self.sync is not None and self.sync.degraded:
            return True
        return self.clock_behind_journal()

    def clock_behind_journal(self) -> bool:
        tip = self.store.journal_tip_at()
        if tip is None or (tip - self.clock.now()).total_seconds() <= CLOCK_STEP_TOLERANCE_S:
            return False
        offset = self.sync.engine.clock_offset_s() if self.sync is not None else None
        return offset is None or abs(offset) > CLOCK_STEP_TOLERANCE_S

    def _health(self) -> Mapping[str, str]:
        """Device health for the status HQ sees (PROTOCOL.md: reader, SAM, camera, gate, disk,
        clock source); on the sync thread, every status."""
        health = {"reader": self.reader.health()}
        if self.gate is not None:
            health["gate"] = self.gate.health()
        if self.face_parts is not None:
            health["camera"] = self.face_parts.camera.health()
        states = self._device_states(health)
        states["sam"] = self._sam_state(health["reader"])
        states["disk"] = disk_state(disk_facts(self.config.terminal.state_dir))
        clock = clock_facts(self.config.terminal.timezone)
        states["clock"] = clock_state(clock, self.clock_behind_journal())
        return states

    def _sam_state(self, reader: Health) -> str:
        section = self.config.reader
        if not isinstance(section, PcscReaderSection) or section.key_store is None:
            return "none (no key store: simulated reader or UID mode)"
        if not isinstance(section.key_store, PsamKeyStoreSection):
            return "none (software key store)"
        return "unavailable" if reader.state == "key_store_unavailable" else "ok"

    @staticmethod
    def _device_states(health: Mapping[str, Health]) -> dict[str, str]:
        # HQ sees the warning too: a UID-mode reader must not look like a healthy one.
        return {
            name: f"{h.state}: {h.detail}"
            if not h.ok
            else f"warning: {h.warning}"
            if h.warning
            else "ok"
            for name, h in health.items()
        }

    def _support_bundle(self) -> Mapping[str, Any]:
        """HQ's ``diag_bundle``, from the provider the daemon gave (diag builds bundles)."""
        assert self._bundle is not None  # offered to RemoteCommands only when given
        return self._bundle(self.config, self.sync)

    def _command(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        # On the sync thread; the sync service exists before the flow, hence the indirection.
        return self.remote.handle(name, args)

    def _housekeeping(self) -> None:
        """Every 10 s, off the tap loop: see :meth:`housekeep`."""
        while not self._stopping.wait(10):
            self.housekeep(self.clock.now())

    def housekeep(self, now: datetime) -> None:
        """Face stills past retention, templates or photos that sync brought in (encoding a
        photo takes a tenth of a second each). Stills expire with faces off too: kept while
        faces were on, they are personal data whose retention does not stop with the feature.
        Also the PIN key, until the key store has answered."""
        self.pin_keys.adopt()
        parts = self.face_parts
        try:
            if parts is None:
                expired = FaceStore(self.store).expire_stills(now)
                if expired:
                    logger.info("%d security stills reached the end of their retention", expired)
                return
            parts.enrol_pending(now)
            parts.housekeeping(now)
        except TerminalError as exc:
            logger.warning("face housekeeping: %s", exc)

    def start_sync(self) -> None:
        if self.sync is not None:
            self.sync.start()

    def _check_integrity(self) -> None:
        """SQLite's quick check, after start and then every ``integrity_check_hours``: a page
        damaged where nothing has read it yet is found before it loses a record."""
        section = self.config.store
        wait = section.integrity_check_after_seconds
        while not self._stopping.wait(wait):
            if self.store.check_integrity():
                logger.error("restarting to quarantine the damaged database")
                return
            if section.integrity_check_hours <= 0:
                return
            wait = section.integrity_check_hours * 3600

    @property
    def restart_due(self) -> bool:
        """A valid new config is waiting, or the database was found damaged."""
        return self.remote.reload_due or self.store.damaged is not None

    def run(self, stop: threading.Event, notifier: Notifier | None = None) -> None:
        """Handle presentations until ``stop`` is set or a restart is due."""
        threading.Thread(target=self._check_integrity, name="integrity-check", daemon=True).start()
        if salvage.pending(self.store.path):
            threading.Thread(
                target=salvage.salvage_quarantined, args=(self.store,), name="salvage", daemon=True
            ).start()
        self.loop.start()
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="face-housekeeping", daemon=True
        )
        self._housekeeper.start()
        try:
            self.loop.run(stop, notifier or Notifier(), lambda: self.restart_due)
        finally:
            self.loop.stop()

    def close(self) -> None:
        self._stopping.set()
        if self.sync is not None:
            # First, while the link is up: it publishes the offline status.
            try:
                self.sync.stop()
            except Exception:
                logger.exception("stopping the HQ link failed")
        if self.face_watch is not None:
            self.face_watch.stop()
        if self.face_parts is not None:
            try:
                self.face_parts.close()
            except Exception:
                logger.exception("closing the camera failed")
        for part in reversed(self._devices):
            try:
                part.close()
            except Exception:
                logger.exception("closing %s failed", type(part).__name__)
        self.store.close()
