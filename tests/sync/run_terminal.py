"""A terminal's sync side as its own process, so a test can kill it with SIGKILL.

python -m tests.sync.run_terminal TERMINAL_DIR HQ_DIR BROKER_PORT
"""

import signal
import sys
import threading
from pathlib import Path

from tests.sync.sites import Terminal, terminal_settings


def main() -> None:
    root, hq_root, port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    terminal = Terminal(root, terminal_settings(root, hq_root, port)).start()
    print("ready", flush=True)
    stop.wait()
    terminal.stop()


if __name__ == "__main__":
    main()
