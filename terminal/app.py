"""Composition root: the one place that turns a config into running parts, in a fixed order.

The App is built in named steps, each given what the earlier ones made (``terminal/lifecycle.py``
runs them). The store comes first, so a broken database stops us before any device is touched;
then what this terminal keeps, the HQ link's service (not yet connected), the face parts, the
reader and the PIN key from its key store, the role's devices, the flow, the tap loop that drives
it (terminal/loop.py), HQ's commands into that loop, and what the last run left unsaid:

    door: store, keeping, sync, faces, reader, pin key, gate, flow, loop, remote, last run
    POS: store, keeping, sync, faces, reader, pin key, keypad, display, flow, loop, remote, last run

A step that fails closes what the steps before it built, newest first, and the error names it.
Nothing is wired in afterwards: whoever observes the loop (diag) gives its hooks at build.

Starting is in named steps too: the HQ link (:meth:`App.start_sync`), then the tap side
(:meth:`App.run`):

    start: sync link, integrity check, salvage, loop, housekeeping

Stopping is the reverse: the tap side when :meth:`App.run` returns, the link at
:meth:`App.close`, which then closes the built parts in the reverse of building. Drivers are
chosen from the config's ``driver`` field through explicit mappings (terminal/devices.py); there
is no discovery.
"""

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from drivers.interfaces import CardReader, Display, Gate, Keypad
from drivers.qr.interface import QrReader
from models.door import AntiPassback
from models.errors import StoreError, TerminalError
from models.pin import PinKey
from models.pos import PosPolicy
from models.wallet import Service
from sync.service import SyncService
from terminal import __version__, restart
from terminal.clock import CLOCK_STEP_TOLERANCE_S, Clock, SystemClock
from terminal.config import Config
from terminal.config.sync import sync_settings
from terminal.devices import DISPLAYS, GATES, KEYPADS, QR_READERS, READERS, SimControls
from terminal.door_mode import DoorModes
from terminal.faces.build import FaceParts, build_face_parts
from terminal.faces.evidence import FaceUse
from terminal.faces.switch import note_model_in_use
from terminal.faces.watch import FaceWatch
from terminal.flows.door import DoorFlow, DoorSettings
from terminal.flows.pos import PosFlow, PosSettings
from terminal.health import status_health
from terminal.lifecycle import Step, Steps, Undo
from terminal.loop import LoopHooks, TapLoop
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

    # Set by the build steps, in their order; an App exists only once all of them ran.
    store: Store
    keeping: Keeping
    reader: CardReader
    flow: DoorFlow | PosFlow
    loop: TapLoop
    remote: RemoteCommands

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        sim: SimControls | None = None,
        config_path: Path | None = None,
        threaded: bool = True,
        bundle: BundleFactory | None = None,
        hooks: LoopHooks | None = None,
    ) -> None:
        self.config = config
        self.sim = sim or SimControls()
        self.clock = clock or SystemClock()
        self.timezone = ZoneInfo(config.terminal.timezone)
        self.threaded = threaded
        self.sync: SyncService | None = None
        self.face_parts: FaceParts | None = None
        self.gate: Gate | None = None
        self.qr_reader: QrReader | None = None
        self.keypad: Keypad | None = None
        self.display: Display | None = None
        self.face_watch: FaceWatch | None = None
        self.door_flow: DoorFlow | None = None
        self.pos_flow: PosFlow | None = None
        self.door_modes: DoorModes | None = None
        self._pin_keys: PinKeys | None = None
        self._faces: FaceUse | None = None  # the loop's face checks, if this role uses faces
        self._face_switch_due = False  # seen by housekeeping, acted on by the daemon (a reload)
        self._bundle = bundle
        self._built = Steps("build", "close")
        self._link = Steps("start", "stop")
        self._taps = Steps("start", "stop")
        self._built.run(self._build_steps(config_path, hooks))

    def _build_steps(self, config_path: Path | None, hooks: LoopHooks | None) -> tuple[Step, ...]:
        """The build, in order (the module docstring lists it; a test holds them to it)."""
        door = self.config.door is not None
        devices = (
            (Step("gate", self._build_gate),)
            if door
            else (Step("keypad", self._build_keypad), Step("display", self._build_display))
        )
        return (
            Step("store", self._open_store),
            Step("keeping", self._keep_only_what_is_kept),
            Step("sync", self._build_sync),
            Step("faces", self._build_faces),
            Step("reader", self._build_reader),
            Step("pin key", self._build_pin_keys),
            *devices,
            Step("flow", self._build_door_flow if door else self._build_pos_flow),
            Step("loop", partial(self._build_loop, hooks)),
            Step("remote", partial(self._build_remote, config_path)),
            Step("last run", self._settle_what_a_crash_left),
        )

    # --- the build steps, in their order -------------------------------------------------------

    def _open_store(self) -> Undo:
        self.store = Store.open(self.config.database_path)
        return self.store.close

    def _sealing(self) -> bool:
        return self.config.pos is not None and self.config.pin_key_id is not None

    def _pin_key(self) -> PinKey | None:
        # Keeping is decided before the reader (and its key store) exists; until then, no key.
        return None if self._pin_keys is None else self._pin_keys()

    @property
    def pin_keys(self) -> PinKeys:
        """The PIN key sealed PIN hashes are checked with (built by the "pin key" step)."""
        assert self._pin_keys is not None  # an App exists only once every build step ran
        return self._pin_keys

    def _keep_only_what_is_kept(self) -> None:
        """What an earlier configuration or version kept and this one does not goes now
        (docs/privacy.md); what it dropped and this one keeps comes back with HQ's snapshot."""
        config = self.config
        self.keeping = Keeping(
            faces=config.faces.enabled,
            full_names=config.privacy.full_names,
            pins=config.pos is not None,
            pin_key=self._pin_key if self._sealing() else None,
        )
        try:
            enforce(self.store, self.keeping)
        except StoreError as exc:  # a full disk: taps go on, and the next start tries again
            logger.error("could not remove what this terminal does not keep: %s", exc)

    def _build_sync(self) -> None:
        """The HQ link's service, not connected: until the "sync link" start step it holds no
        thread and no connection, so there is nothing to close if a later step fails."""
        config = self.config
        if not config.sync.enabled:
            return
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

    def _build_faces(self) -> Undo | None:
        if not self.config.faces.enabled:
            return None
        self.face_parts = parts = build_face_parts(self.config.faces, self.store, self.sim.camera)
        try:
            note_model_in_use(self.store, parts.faces, parts.encoder.model_id, self.clock.now())
            parts.enrol_pending(self.clock.now())
        except BaseException:
            parts.close()  # the step failed, so nothing undoes it for us
            raise
        return parts.close

    def _build_reader(self) -> Undo:
        """The card reader, and the QR reader beside it when codes are taken ([qr])."""
        self.reader = reader = READERS[self.config.reader.driver](self.config.reader, self.sim)
        section = self.config.qr
        if not section.enabled:
            return reader.close
        camera = None if self.face_parts is None else self.face_parts.camera
        try:
            self.qr_reader = codes = QR_READERS[section.driver](section, camera, self.sim)
        except BaseException:
            reader.close()  # the step failed, so nothing undoes it for us
            raise

        def close() -> None:
            try:
                codes.close()
            finally:
                reader.close()

        return close

    def _build_pin_keys(self) -> None:
        keystore = getattr(self.reader, "key_store", None)
        key_id = self.config.pin_key_id
        source = None
        if self._sealing() and keystore is not None and key_id is not None:
            source = PinKeySource(keystore, key_id)
        self._pin_keys = PinKeys(self.store, source)
        self._pin_keys.adopt()

    def _build_gate(self) -> Undo:
        section = self.config.gate
        assert section is not None  # the config validator ensures it
        self.gate = gate = GATES[section.driver](section, self.sim)
        return gate.close

    def _build_keypad(self) -> Undo:
        section = self.config.keypad
        assert section is not None
        self.keypad = keypad = KEYPADS[section.driver](section, self.sim)
        return keypad.close

    def _build_display(self) -> Undo:
        section = self.config.display
        assert section is not None
        self.display = display = DISPLAYS[section.driver](section, self.sim)
        return display.close

    def _face_use(self, seconds: float) -> FaceUse | None:
        if self.face_parts is None:
            return None
        return FaceUse(
            self.face_parts.verifier,
            self.face_parts.faces,
            seconds=seconds,
            retention=self.config.faces.still_retention,
        )

    def _build_door_flow(self) -> Undo | None:
        door, gate = self.config.door, self.gate
        assert door is not None and gate is not None
        section = self.config.faces
        self._faces = faces = self._face_use(section.card_face_seconds)
        if faces is not None and door.face_only:
            self.face_watch = FaceWatch(
                faces.verifier,
                faces.faces,
                seconds=section.identify_seconds,
                repeat_seconds=section.repeat_seconds,
                retention=section.still_retention,
            )
        self.flow = self.door_flow = DoorFlow(
            settings=DoorSettings(
                door.id,
                None if door.direction == "none" else door.direction,
                door.open_seconds,
                AntiPassback(door.anti_passback, door.anti_passback_minutes),
                face=door.face,
                face_seconds=section.card_face_seconds,
                site=self.config.cards.site_cards(),
                qr_skew_seconds=self.config.qr.skew_seconds,
            ),
            store=self.store,
            face_checks=faces is not None and door.face != "off",
        )
        self.door_modes = DoorModes(self.door_flow, gate, self.store, self.clock)
        self.door_modes.restore()
        return None if self.face_watch is None else self.face_watch.stop

    def _build_pos_flow(self) -> None:
        pos = self.config.pos
        assert pos is not None
        section = self.config.faces
        self._faces = faces = self._face_use(section.identify_seconds) if pos.face_pay else None
        self.flow = self.pos_flow = PosFlow(
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
                qr_skew_seconds=self.config.qr.skew_seconds,
            ),
            store=self.store,
            degraded=self._degraded,
            face_pay=faces is not None,
            pin_key=self.pin_keys,
        )

    def _build_loop(self, hooks: LoopHooks | None) -> None:
        self.loop = TapLoop(
            self.flow,
            store=self.store,
            clock=self.clock,
            timezone=self.timezone,
            reader=self.reader,
            qr_reader=self.qr_reader,
            gate=self.gate,
            keypad=self.keypad,
            display=self.display,
            faces=self._faces,
            watch=self.face_watch,
            threaded=self.threaded,
            hooks=hooks,
        )

    def _build_remote(self, config_path: Path | None) -> None:
        self.remote = RemoteCommands(
            door=self.door_modes,
            post=self.loop.post,
            submit=self.loop.submit,
            config_path=config_path,
            bundle=self._support_bundle if self._bundle is not None else None,
        )

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

    # --- what the parts ask of the App --------------------------------------------------------

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
        """For the status HQ sees (terminal/health.py); on the sync thread, every status."""
        devices = {"reader": self.reader.health()}
        if self.qr_reader is not None:
            devices["qr_reader"] = self.qr_reader.health()
        if self.gate is not None:
            devices["gate"] = self.gate.health()
        if self.face_parts is not None:
            devices["camera"] = self.face_parts.camera.health()
        return status_health(self.config, devices, clock_behind_journal=self.clock_behind_journal())

    def _support_bundle(self) -> Mapping[str, Any]:
        """HQ's ``diag_bundle``, from the provider the daemon gave (diag builds bundles)."""
        assert self._bundle is not None  # offered to RemoteCommands only when given
        return self._bundle(self.config, self.sync)

    def _command(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        # On the sync thread, which starts after the build; the service is built before the
        # loop that HQ's commands go to, hence the indirection.
        return self.remote.handle(name, args)

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
            if not self._face_switch_due and parts.switch_due:
                logger.warning("face model %s has enough templates: restarting into it",
                               parts.choice.target_model)  # fmt: skip
                self._face_switch_due = True
        except TerminalError as exc:
            logger.warning("face housekeeping: %s", exc)

    @property
    def reload_due(self) -> bool:
        """Start again from the config file: a valid new one is waiting, or the face model
        being switched to has enough templates now (terminal/faces/switch.py)."""
        if self.remote.reload_due:
            return True
        return self.face_parts is not None and self._face_switch_due

    @property
    def restart_due(self) -> bool:
        """A reload is due, or the database was found damaged."""
        return self.reload_due or self.store.damaged is not None

    # --- start and stop ------------------------------------------------------------------------

    def _start_steps(self) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
        """The start, in order (the module docstring lists it): the HQ link, which the demo
        holds back until its story needs it, then the tap side."""
        link = (Step("sync link", self._start_sync_link),)
        taps = (
            Step("integrity check", self._start_integrity_check),
            Step("salvage", self._start_salvage),
            Step("loop", self._start_loop),
            Step("housekeeping", self._start_housekeeping),
        )
        return link, taps

    def start_sync(self) -> None:
        self._link.run(self._start_steps()[0])

    def run(self, stop: threading.Event, notifier: Notifier | None = None) -> None:
        """Start the tap side and handle presentations until ``stop`` is set or a restart is
        due; then stop the tap side, newest first."""
        self._taps.run(self._start_steps()[1])
        try:
            self.loop.run(stop, notifier or Notifier(), lambda: self.restart_due)
        finally:
            self._taps.undo()

    def close(self) -> None:
        """Stop what is still running, then close the built parts in the reverse of building."""
        self._taps.undo()
        self._link.undo()  # before the devices close, while the link can say we are offline
        self._built.undo()

    def _start_sync_link(self) -> Undo | None:
        if self.sync is None:
            return None
        self.sync.start()
        return self.sync.stop

    def _start_integrity_check(self) -> Undo:
        stopping = threading.Event()
        threading.Thread(
            target=self._check_integrity, args=(stopping,), name="integrity-check", daemon=True
        ).start()
        return stopping.set

    def _check_integrity(self, stopping: threading.Event) -> None:
        """SQLite's quick check, after start and then every ``integrity_check_hours``: a page
        damaged where nothing has read it yet is found before it loses a record."""
        section = self.config.store
        wait = section.integrity_check_after_seconds
        while not stopping.wait(wait):
            if self.store.check_integrity():
                logger.error("restarting to quarantine the damaged database")
                return
            if section.integrity_check_hours <= 0:
                return
            wait = section.integrity_check_hours * 3600

    def _start_salvage(self) -> None:
        # Nothing to stop: it reads the quarantined file once and ends; a stop leaves the rest.
        if salvage.pending(self.store.path):
            threading.Thread(
                target=salvage.salvage_quarantined, args=(self.store,), name="salvage", daemon=True
            ).start()

    def _start_loop(self) -> Undo:
        self.loop.start()
        return self.loop.stop

    def _start_housekeeping(self) -> Undo:
        stopping = threading.Event()
        threading.Thread(
            target=self._housekeeping, args=(stopping,), name="face-housekeeping", daemon=True
        ).start()
        return stopping.set

    def _housekeeping(self, stopping: threading.Event) -> None:
        """Every 10 s, off the tap loop: see :meth:`housekeep`."""
        while not stopping.wait(10):
            self.housekeep(self.clock.now())
