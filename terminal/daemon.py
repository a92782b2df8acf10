"""``ykt run``: the daemon's life cycle — start, serve taps, stop cleanly on SIGTERM/SIGINT."""

import logging
import signal
import threading
from types import FrameType

from terminal import __version__
from terminal.app import App
from terminal.config import Config
from terminal.diag.server import serving
from terminal.logs import setup_logging
from terminal.sdnotify import Notifier

logger = logging.getLogger(__name__)


def run(config: Config) -> int:
    setup_logging(config.log.level, config.log.format)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, finishing the tap in progress", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    notifier = Notifier()
    app = App(config)
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
        # On this thread, before the tap loop: diag hooks into the flow's reader here.
        with serving(app, config.diag, sync=app.sync):
            notifier.ready(f"serving {role}")
            app.run(stop, notifier)
    finally:
        notifier.stopping()
        app.close()
        logger.info("stopped")
    return 0
