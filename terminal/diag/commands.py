"""The diag commands, as the daemon's socket server and the offline fallback both run them.

:class:`Commands` answers one request with a JSON-able dict carrying a ``level``. With a
:class:`~terminal.diag.live.LiveTerminal` it is the daemon's side of the socket; without one it
is what ``ykt diag`` runs in its own process when the daemon is down, for the commands in
:data:`OFFLINE` (they only read the database, the clock and the disk).
"""

import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from drivers import pcsc
from models.errors import DriverError
from models.settings import secret_paths
from terminal import __version__
from terminal.clock import CLOCK_STEP_TOLERANCE_S, rfc3339
from terminal.config import Config, DiagSection, PcscReaderSection, signing_key_file
from terminal.diag.facts import (
    DISK_FULL_BYTES,
    DISK_LOW_BYTES,
    DISK_LOW_PCT,
    Database,
    age_seconds,
    clock_facts,
    disk_facts,
    identity,
    sync_facts,
)
from terminal.diag.protocol import (
    FACE_MAX_FRAMES,
    GATE_TEST_MAX_SECONDS,
    DiagError,
    ErrorCode,
    Level,
    worst,
)
from terminal.diag.qr import MAX_TEXT as QR_MAX_TEXT
from terminal.diag.redact import mask_digits, name_candidates, redact_config, scrub_names

if TYPE_CHECKING:  # the offline fallback must not need the daemon's composition root
    from terminal.diag.live import LiveTerminal

logger = logging.getLogger(__name__)

OFFLINE = frozenset(
    {"status", "readers", "tx", "events", "db_check", "config", "identity", "sync", "watch"}
    | {"bundle"}
)
NO_SYNC = "sync is not enabled on this terminal"
# Thresholds that turn "serving" into "needs attention" (exit 3).
OUTBOX_STALE_S = 3600
# A sound link drops a frame now and then (a replug, a board's boot banner); hundreds within the
# board's recent window (5 min, about one a second with a poll a second) is a failing cable,
# interference or a wrong baud rate, and soon missed acks and events.
BAD_FRAMES_RECENT_MAX = 200


class SyncControl(Protocol):
    """What diag needs from the HQ link once it is wired (``sync.service.SyncService``)."""

    def status(self) -> Mapping[str, Any]:
        """The link's own view: online, broker, degraded, rejected counts."""
        ...

    def force_resync(self) -> str:
        """Ask HQ for a snapshot now; returns what was done, in words."""
        ...

    def force_upload(self) -> str:
        """Send the outbox now instead of at the next tick; returns what was done."""
        ...


def _int(args: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DiagError(ErrorCode.BAD_REQUEST, f"{key} must be a whole number {low}..{high}")
    return value


def _float(args: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise DiagError(ErrorCode.BAD_REQUEST, f"{key} must be a number {low:g}..{high:g}")
    return float(value)


def _text(args: Mapping[str, Any], key: str, pattern: str = r"[A-Za-z0-9_.:-]{1,64}") -> str | None:
    value = args.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise DiagError(ErrorCode.BAD_REQUEST, f"{key}: not an acceptable value")
    return value


def _role(config: Config) -> dict[str, Any]:
    if config.door is not None:
        return {"kind": "door", "door": config.door.id, "direction": config.door.direction}
    assert config.pos is not None
    return {"kind": "pos", "merchant": config.pos.merchant, "service": config.pos.service}


def _no_daemon(config: Config) -> dict[str, Any]:
    """What can be said of the daemon when its diag socket did not answer."""
    if not config.diag.enabled:
        # No socket to ask: silence here says nothing about whether taps are served.
        return {
            "running": None,
            "unknown": "diag is disabled in the config ([diag] enabled = false), so whether it "
            "runs cannot be asked; check with systemctl status ykt-terminal",
        }
    return {"running": False}


def assess(status: dict[str, Any]) -> tuple[Level, list[str]]:
    """The status's level and, in words, everything that made it worse than ok."""
    failed: list[str] = []
    degraded: list[str] = []
    running = status["daemon"].get("running")
    if running is None:
        degraded.append(f"daemon: {status['daemon'].get('unknown')}")
    elif not running:
        failed.append("the daemon is not running: no taps are served")
    for name, health in status.get("devices", {}).items():
        if not health.get("ok"):
            failed.append(f"{name}: {health.get('state')} {health.get('detail', '')}".strip())
        elif health.get("warning"):
            degraded.append(f"{name}: {health['warning']}")
    database = status.get("database", {})
    if "error" in database:
        failed.append(f"database: {database['error']}")
    elif database.get("schema_version", 0) > database.get("schema_latest", 0):
        failed.append("database schema is newer than this software")
    failing = database.get("store_failed")
    if failing:
        failed.append(
            f"store: {failing['refused']} taps refused since {failing['since']} (nothing could "
            f"be recorded, so nothing was admitted or charged): {failing['error']}"
        )
    if database.get("damaged"):
        failed.append(
            "database damaged (" + database["damaged"].splitlines()[0][:120] + "): the daemon "
            "restarts and quarantines it; HQ refills it"
        )
    if database.get("quarantined"):
        degraded.append(
            "database was quarantined and started empty "
            f"({', '.join(database['quarantined'])}): a new journal epoch; send the file to "
            "the support desk (docs/operations.md)"
        )
    sync = status.get("sync", {})
    if sync.get("enabled"):
        if sync.get("head_expired"):
            degraded.append("HQ's head has expired: POS payments held to the offline caps")
        # A stale head or a command seen before comes back in normal operation; anything else
        # refused means forged or broken messages reach this terminal.
        rejected = {
            reason: count
            for reason, count in ((sync.get("link") or {}).get("rejected") or {}).items()
            if reason not in ("stale", "expired")
        }
        if rejected:
            degraded.append(
                f"HQ link: {sum(rejected.values())} messages rejected since start ("
                + ", ".join(f"{k} {v}" for k, v in sorted(rejected.items()))
                + "): forged or broken messages reach this terminal"
            )
        age = (sync.get("outbox") or {}).get("oldest_age_s")
        if age is not None and age > OUTBOX_STALE_S:
            degraded.append(f"outbox: the oldest unsent record is {age // 60} min old")
    degraded += _gate_link_problems(status.get("gate_link") or {})
    clock = status.get("clock", {})
    if clock.get("ntp_synchronized") is False:
        degraded.append("clock: not synchronised (NTP)")
    hq_offset = clock.get("hq_offset_s")
    if hq_offset is not None and abs(hq_offset) > CLOCK_STEP_TOLERANCE_S:
        degraded.append(f"clock: {hq_offset:+.0f} s from HQ's clock (by HQ's last head)")
    elif clock.get("behind_journal_s") and hq_offset is None:
        # Once a fresh head agrees with the clock, records stamped ahead of it were the clock's
        # earlier error, now put right: nothing to warn about for the day until they are passed.
        degraded.append(
            f"clock: {clock['behind_journal_s']} s behind the newest journal record "
            "(set back or reset?)"
        )
    disk = status.get("disk", {})
    free = disk.get("free_bytes")
    if free is not None and free < DISK_FULL_BYTES:
        failed.append(f"disk: only {free // 1_000_000} MB free for the database")
    elif free is not None and (
        free < DISK_LOW_BYTES or (disk.get("free_pct") or 100) < DISK_LOW_PCT
    ):
        degraded.append(f"disk: {free // 1_000_000} MB free ({disk.get('free_pct')} %)")
    level = Level.FAILED if failed else Level.DEGRADED if degraded else Level.OK
    return level, failed + degraded


def _gate_link_problems(link: Mapping[str, Any]) -> list[str]:
    found = []
    recent = link.get("bad_frames_recent") or 0
    if recent > BAD_FRAMES_RECENT_MAX:
        reasons = ", ".join(f"{k} {v}" for k, v in (link.get("bad_frame_reasons") or {}).items())
        found.append(
            f"gate link: {recent} bad frames from the board in the last "
            f"{(link.get('recent_s') or 0) // 60} min ({link.get('bad_frames')} since start"
            + (f"; {reasons}" if reasons else "")
            + "): check the serial cable, its shielding and the baud rate"
        )
    alarms = link.get("alarms") or {}
    if alarms.get("flooding"):
        flooded, repeats = alarms.get("flooded") or {}, alarms.get("repeats") or {}
        found.append(
            f"gate alarms: flooding, {sum(flooded.values())} not raised one by one ("
            + ", ".join(f"{k} {v}" for k, v in flooded.items())
            + f"); {sum(repeats.values())} repeats folded ("
            + ", ".join(f"{k} {v}" for k, v in repeats.items())
            + "): see ykt diag events and the log"
        )
    return found


class Commands:
    """Runs diag commands against ``config`` (and the running terminal when ``live`` is given)."""

    def __init__(
        self,
        config: Config,
        *,
        live: "LiveTerminal | None" = None,
        diag: DiagSection | None = None,
        sync: SyncControl | None = None,
    ) -> None:
        self.config = config
        self.live = live
        self.diag = diag or DiagSection()
        self.sync = sync
        self._table: dict[str, Callable[[Mapping[str, Any], int], dict[str, Any]]] = {
            "status": lambda a, u: self.status(),
            "readers": lambda a, u: self.readers(),
            "card": self.card,
            "qr": self.qr,
            "gate_test": self.gate_test,
            "camera": self.camera,
            "face": self.face,
            "tx": lambda a, u: self.tx(a),
            "events": lambda a, u: self.events(a),
            "sync": lambda a, u: self.sync_status(),
            "sync_resync": lambda a, u: self.sync_action("resync"),
            "sync_upload": lambda a, u: self.sync_action("upload"),
            "db_check": lambda a, u: self.db_check(),
            "config": lambda a, u: self.effective_config(),
            "identity": lambda a, u: self.identity(),
            "watch": lambda a, u: self.watch(a),
            "bundle": lambda a, u: self.bundle(a),
        }

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._table)

    def run(self, name: str, args: Mapping[str, Any], peer_uid: int = 0) -> dict[str, Any]:
        handler = self._table.get(name)
        if handler is None:
            raise DiagError(ErrorCode.BAD_REQUEST, f"unknown command {name!r}")
        if self.live is None and name not in OFFLINE:
            raise DiagError(ErrorCode.NOT_AVAILABLE, f"{name} needs the running daemon")
        result = handler(args, peer_uid)
        result.setdefault("level", Level.OK)
        result["command"] = name
        return result

    def _live(self) -> "LiveTerminal":
        if self.live is None:  # run() already refused; this keeps the type checker honest
            raise DiagError(ErrorCode.NOT_AVAILABLE, "needs the running daemon")
        return self.live

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        config = self.config
        status: dict[str, Any] = {
            "version": __version__,
            "terminal_id": config.terminal.id,
            "site": config.terminal.site,
            "role": _role(config),
            "daemon": self.live.daemon() if self.live else _no_daemon(config),
            "devices": self.live.devices() if self.live else {},
        }
        last_at = None
        try:
            with Database(config.database_path) as db:
                status["database"] = db.files() | {"counts": db.counts()}
                last_seq, last_at = db.journal_tip()
                sync = sync_facts(db.sync_state(), db.outbox(now), last_seq, now)
        except DiagError as exc:
            status["database"] = {"path": str(config.database_path), "error": exc.message}
            sync = {}
        sync["enabled"] = self._sync_enabled()
        sync["link"] = dict(self.sync.status()) if self.sync is not None else None
        status["sync"] = sync
        gate = getattr(self.live.app, "gate", None) if self.live is not None else None
        counters = getattr(gate, "link_counters", None)  # only a serial board keeps them
        if callable(counters):
            status["gate_link"] = counters()
        store = self.live.app.store if self.live is not None else None
        if store is not None and store.failing_since is not None:
            status["database"]["store_failed"] = {
                "refused": store.failures,
                "since": rfc3339(datetime.fromtimestamp(store.failing_since, UTC)),
                "error": store.last_failure,
                "last_at": rfc3339(datetime.fromtimestamp(store.last_failure_at or 0, UTC)),
            }
        clock = clock_facts(config.terminal.timezone, now)
        behind = 0
        if last_at:
            age = age_seconds(last_at, now)
            behind = -age if age is not None and age < -CLOCK_STEP_TOLERANCE_S else 0
        clock["journal_last_at"] = last_at
        clock["behind_journal_s"] = behind
        clock["hq_offset_s"] = (sync["link"] or {}).get("clock_offset_s")
        status["clock"] = clock
        status["disk"] = disk_facts(config.terminal.state_dir)
        status["mode"] = self._mode(sync)
        status["level"], status["problems"] = assess(status)
        return status

    def _sync_enabled(self) -> bool:
        return bool(self.config.sync.enabled)

    def _mode(self, sync: dict[str, Any]) -> str:
        if self.live is None:
            return "stopped"
        if self.live.app.store.failing_since is not None:
            return "store_failed"
        pos = self.live.app.pos_flow
        if (sync.get("enabled") and sync.get("head_expired")) or (pos and pos.degraded()):
            return "degraded"
        return "normal"

    # -- devices --------------------------------------------------------------------------------

    def readers(self) -> dict[str, Any]:
        section = self.config.reader
        result: dict[str, Any] = {"driver": section.driver}
        if self.live is not None:
            result["health"] = self.live.devices()["reader"]
        if not isinstance(section, PcscReaderSection):
            result["readers"] = []
            result["note"] = "simulated reader: there is no PC/SC reader to list"
            return result
        result["pattern"] = section.reader_pattern
        try:
            names = pcsc.list_readers()
        except DriverError as exc:
            result.update(level=Level.FAILED, readers=[], error=str(exc))
            return result
        # The ATR of a card in the field needs a status query the PC/SC driver does not offer
        # yet; when it does (``reader_states``), it is shown.
        states: Callable[[], dict[str, bytes | None]] | None = getattr(pcsc, "reader_states", None)
        atrs = states() if states is not None else {}
        result["readers"] = [
            {
                "name": name,
                "matches": pcsc.reader_matches(section.reader_pattern, name),
                "atr": None if atrs.get(name) is None else bytes(atrs[name] or b"").hex(" "),
            }
            for name in names
        ]
        if not any(r["matches"] for r in result["readers"]):
            result["level"] = Level.FAILED
            result["error"] = f"no reader matches {section.reader_pattern!r}"
        return result

    def card(self, args: Mapping[str, Any], peer_uid: int) -> dict[str, Any]:
        timeout = _float(args, "timeout", self.diag.card_timeout_seconds, 1, 300)
        amount = args.get("amount")
        if amount is not None:
            amount = _int(args, "amount", 0, 1, 100_000_000)
        # The 20-digit card number, or a chip UID (hex) where the reader runs in UID mode.
        number = _text(args, "number", r"[0-9A-Fa-f]{8,32}")
        logger.info("diag: card dry run requested by uid %d", peer_uid)
        if number is not None:
            return self._live().judge_number(number, amount)
        return self._live().dry_run(timeout, amount)

    def qr(self, args: Mapping[str, Any], peer_uid: int) -> dict[str, Any]:
        amount = args.get("amount")
        if amount is not None:
            amount = _int(args, "amount", 0, 1, 100_000_000)
        text = args.get("text")
        logger.info("diag: code dry run requested by uid %d", peer_uid)
        if text is None:
            timeout = _float(args, "timeout", self.diag.card_timeout_seconds, 1, 300)
            return self._live().code_dry_run(timeout, amount)
        if not isinstance(text, str) or not 0 < len(text) <= QR_MAX_TEXT:
            raise DiagError(ErrorCode.BAD_REQUEST, f"text: a code of 1..{QR_MAX_TEXT} characters")
        result = self._live().judge_code(text, amount)
        if not self.config.qr.enabled:
            result["note"] = "this terminal takes no codes ([qr] enabled = false): judged as if on"
        return result

    def gate_test(self, args: Mapping[str, Any], peer_uid: int) -> dict[str, Any]:
        seconds = _float(args, "seconds", 3.0, 0.5, GATE_TEST_MAX_SECONDS)
        return self._live().gate_test(seconds, peer_uid)

    def camera(self, args: Mapping[str, Any], peer_uid: int) -> dict[str, Any]:
        return self._live().camera()

    def face(self, args: Mapping[str, Any], peer_uid: int) -> dict[str, Any]:
        frames = _int(args, "frames", 1, 1, FACE_MAX_FRAMES)
        show_holder = args.get("show_holder", False)
        if not isinstance(show_holder, bool):
            raise DiagError(ErrorCode.BAD_REQUEST, "show_holder must be true or false")
        if show_holder:
            # Who stands at the camera is personal data: say who asked for it.
            logger.warning(
                "diag: face check with the best match's holder id shown, uid %d", peer_uid
            )
        else:
            logger.info("diag: face check (%d frames) requested by uid %d", frames, peer_uid)
        return self._live().face(frames, show_holder)

    # -- data -----------------------------------------------------------------------------------

    def tx(self, args: Mapping[str, Any]) -> dict[str, Any]:
        limit = _int(args, "limit", 20, 1, 1000)
        with Database(self.config.database_path) as db:
            rows = db.transactions(
                limit=limit,
                card=_text(args, "card", r"[0-9]{4}|[0-9]{8,32}"),
                reason=_text(args, "reason"),
                kind=_text(args, "kind"),
                decision=_text(args, "decision", r"allow|deny"),
            )
        return {"transactions": rows, "timezone": self.config.terminal.timezone}

    def events(self, args: Mapping[str, Any]) -> dict[str, Any]:
        limit = _int(args, "limit", 20, 1, 1000)
        with Database(self.config.database_path) as db:
            found = db.events(limit=limit, kind=_text(args, "type"))
        return {"events": found, "timezone": self.config.terminal.timezone}

    def db_check(self) -> dict[str, Any]:
        with Database(self.config.database_path) as db:
            result = db.check()
        result["path"] = str(self.config.database_path)
        return result

    def sync_status(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        with Database(self.config.database_path) as db:
            last_seq, _ = db.journal_tip()
            result = sync_facts(db.sync_state(), db.outbox(now), last_seq, now)
        result["enabled"] = self._sync_enabled()
        result["link"] = dict(self.sync.status()) if self.sync is not None else None
        if not result["enabled"]:
            result["note"] = NO_SYNC
        levels = []
        if result["enabled"] and result.get("head_expired"):
            levels.append(Level.DEGRADED)
        age = result["outbox"].get("oldest_age_s")
        if result["enabled"] and age is not None and age > OUTBOX_STALE_S:
            levels.append(Level.DEGRADED)
        result["level"] = worst(levels)
        return result

    def sync_action(self, action: str) -> dict[str, Any]:
        if self.sync is None:
            return {"level": Level.NOT_AVAILABLE, "action": action, "message": NO_SYNC}
        done = self.sync.force_resync() if action == "resync" else self.sync.force_upload()
        return {"action": action, "message": done}

    def effective_config(self) -> dict[str, Any]:
        return {
            "config": redact_config(
                self.config.model_dump(mode="json"), secret_paths(type(self.config))
            ),
            "diag": self.diag.model_dump(mode="json"),
            "database_path": str(self.config.database_path),
        }

    def identity(self) -> dict[str, Any]:
        terminal = self.config.terminal
        key = signing_key_file(self.config.sync, terminal.state_dir)
        return identity(terminal.id, terminal.site, key)

    def watch(self, args: Mapping[str, Any]) -> dict[str, Any]:
        status = self.status()
        limit = _int(args, "limit", 8, 1, 50)
        try:
            with Database(self.config.database_path) as db:
                recent = db.transactions(limit=limit)
        except DiagError:
            recent = []
        return {
            "level": status["level"],
            "status": status,
            "recent": recent,
            "activity": self.live.activity()[-limit:] if self.live else [],
        }

    def bundle(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Everything for the support bundle that comes from the terminal, already redacted."""
        limit = _int(args, "events", 200, 0, 10_000)
        status = self.status()
        parts: dict[str, Any] = {
            "level": status["level"],
            "status": status,
            "config": self.effective_config(),
        }
        try:
            with Database(self.config.database_path) as db:
                events = db.events(limit=limit) if limit else []
                parts["statistics"] = db.statistics()
                parts["check"] = db.check()
                text = mask_digits(repr(events))
                names = db.known_names(name_candidates(text))
                if names:
                    # A detail string carried a name after all: mask it everywhere in the events.
                    events = [_scrub_value(e, names) for e in events]
                parts["events"] = events
        except DiagError as exc:
            parts["database_error"] = exc.message
            parts["events"] = []
        return parts


def _scrub_value(value: Any, names: set[str]) -> Any:
    if isinstance(value, str):
        return scrub_names(value, names)
    if isinstance(value, dict):
        return {k: _scrub_value(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_value(v, names) for v in value]
    return value
