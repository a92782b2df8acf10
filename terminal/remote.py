"""The commands from HQ that the terminal application carries out (docs/protocol.md "Commands").

The sync engine checks signature, expiry and at-most-once, then calls :meth:`RemoteCommands.handle`
on its own thread. Devices are driven only by the tap loop, so ``open`` and ``set_mode`` are
handed to it through its inbox and waited for (a few seconds at most: the reply then says
``queued`` and the command still runs once). ``reload_config`` checks the file first and refuses
an invalid one with every error, so a typo pushed from HQ cannot take a gate down; a valid one
restarts the terminal in-process at the next idle moment. ``diag_bundle`` answers with the same
redacted bundle the local diag CLI builds.
"""

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

from models.door import DoorMode
from models.errors import ConfigError, DriverError, StoreError
from sync.engine import CommandRefused
from terminal import config as config_module
from terminal import preflight
from terminal.door_mode import DoorModes
from terminal.flows.steps import FlowEvent, RemoteOpenOrdered

logger = logging.getLogger(__name__)

WAIT_SECONDS = 5.0
RELOAD_DELAY_SECONDS = 1.0  # lets the reply reach HQ before the link is restarted
MODES = frozenset(m.value for m in DoorMode)
BundleProvider = Callable[[], Mapping[str, Any]]


class RemoteCommands:
    """``post`` and ``submit`` are the tap loop's (its inbox); ``door`` is None on a POS."""

    def __init__(
        self,
        *,
        door: DoorModes | None,
        post: Callable[[FlowEvent], None] | None = None,
        submit: Callable[[Callable[[], None]], None] | None = None,
        config_path: Path | None = None,
        bundle: BundleProvider | None = None,
    ) -> None:
        self.door = door
        self.post = post
        self.submit = submit
        self.config_path = config_path
        self.bundle = bundle
        self._reload_at: float | None = None

    @property
    def reload_due(self) -> bool:
        """A valid new config is waiting and the reply has had time to leave."""
        return self._reload_at is not None and time.monotonic() >= self._reload_at

    # --- on the sync thread -------------------------------------------------------------------

    def handle(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        if name in ("open", "set_mode"):
            return self._on_tap_loop(name, args)
        if name == "reload_config":
            return self._reload()
        if name == "diag_bundle":
            if self.bundle is None:
                raise CommandRefused("diag_bundle is not available on this terminal")
            return {"bundle": self.bundle()}
        raise CommandRefused(f"{name} is not available on this terminal in this version")

    def _on_tap_loop(self, name: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        door = self.door
        if door is None or self.post is None or self.submit is None:
            raise CommandRefused(f"{name}: this terminal controls no door")
        reason = str(args.get("reason", ""))
        future: Future[Mapping[str, Any]] = Future()
        if name == "open":
            # A presentation in progress finishes first; the flow records the open like a tap.
            self.post(RemoteOpenOrdered(reason, "hq", future))
        else:
            mode = args.get("mode")
            if mode not in MODES:
                raise CommandRefused(f"set_mode: mode must be one of {', '.join(sorted(MODES))}")

            def set_mode() -> None:
                try:
                    future.set_result({"mode": str(door.set(str(mode), reason=reason, by="hq"))})
                except (DriverError, StoreError, ValueError) as exc:
                    future.set_exception(CommandRefused(str(exc)))

            self.submit(set_mode)
        try:
            return future.result(timeout=WAIT_SECONDS)
        except FutureTimeout:
            return {"queued": True}
        except CommandRefused as exc:
            raise CommandRefused(f"{name}: {exc}") from None

    def _reload(self) -> Mapping[str, Any]:
        if self.config_path is None:
            raise CommandRefused("reload_config: this terminal was not started from a file")
        try:
            problems = preflight.problems(config_module.load(self.config_path))
        except ConfigError as exc:
            raise CommandRefused(
                f"reload_config: the file is not valid, nothing changed: {exc}"
            ) from None
        if problems:
            raise CommandRefused(
                f"reload_config: a secret file is not usable, nothing changed: {problems[0]}"
            )
        self._reload_at = time.monotonic() + RELOAD_DELAY_SECONDS
        logger.warning("config reload ordered by HQ: restarting with %s", self.config_path)
        return {"valid": True, "reloading": True}
