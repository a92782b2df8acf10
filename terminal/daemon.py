"""``ykt run``: the daemon's life cycle — start, serve taps, stop cleanly on SIGTERM/SIGINT."""

import logging
import signal
import threading
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from models.errors import ConfigError
from sync.service import SyncService
from terminal import __version__, preflight
from terminal import config as config_module
from terminal.app import App
from terminal.config import Config
from terminal.diag.commands import Commands
from terminal.diag.live import LiveTerminal
from terminal.diag.server import serving
from terminal.logs import setup_logging
from terminal.sdnotify import Notifier

logger = logging.getLogger(__name__)


def run(config: Config, path: Path | None = None) -> int:
    """Serve until SIGTERM/SIGINT; a ``reload_config`` from HQ restarts the parts in-process
    with the re-read file (``path``), keeping the signal handlers and the systemd watchdog."""
    setup_logging(config.log.level, config.log.format)
    found = preflight.problems(config)
    for problem in found:
        logger.error("config: %s", problem)
    if found:
        return 2  # what `ykt config check` says too, with the same words
    for warning in config.warnings():
        logger.warning("config: %s", warning)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, finishing the tap in progress", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    notifier = Notifier()
    while True:
        restart = _serve(config, path, stop, notifier)
        if restart is None or stop.is_set():
            break
        if restart == "damaged" or path is None:
            logger.warning("restarting in-process (%s)", restart)
            continue  # the store quarantines the damaged file as it opens
        try:
            config = config_module.load(path)
        except ConfigError as exc:
            # Checked when the command came; changed again since. Go on with what ran.
            logger.error("config changed after it was checked, keeping the running one: %s", exc)
            continue
        setup_logging(config.log.level, config.log.format)
        logger.info("config reloaded from %s", path)
    notifier.stopping()
    logger.info("stopped")
    return 0


def _support_bundle(config: Config, sync: SyncService | None) -> Mapping[str, Any]:
    return Commands(config, diag=config.diag, sync=sync).bundle({})


def _serve(
    config: Config, path: Path | None, stop: threading.Event, notifier: Notifier
) -> str | None:
    """Run one App until stopped; why it stopped when it is to start again ("reload",
    "damaged"), ``None`` for good."""
    # Diag's hooks go into the tap loop as it is built; diag is bound to the App once it exists.
    live = LiveTerminal() if config.diag.enabled else None
    app = App(
        config,
        config_path=path,
        bundle=_support_bundle,
        hooks=None if live is None else live.hooks,
    )
    try:
        role = f"door {config.door.id}" if config.door else f"POS {config.pos.merchant}"  # type: ignore[union-attr]
        logger.info(
            "terminal %s ready (version %s, %s, reader %s)",
            config.terminal.id,
            __version__,
            role,
            config.reader.driver,
        )
        app.start_sync()
        with serving(app, config.diag, sync=app.sync, live=live):
            notifier.ready(f"serving {role}")
            app.run(stop, notifier)
        if app.store.damaged is not None:
            return "damaged"
        return "reload" if app.reload_due else None
    finally:
        app.close()
