"""HQ's ``set_mode`` at a door: the board first, then the record, then the flow's mode.

Runs on the tap loop (it touches the gate, which only the loop drives), between presentations.
The mode outlives restarts: an evacuation does not end because the terminal rebooted.
"""

import logging

from drivers.interfaces import Gate
from models.door import DoorMode
from models.errors import DriverError
from terminal.clock import Clock, rfc3339
from terminal.flows.door import MODE_STATE, DoorFlow, FlowNotice, Notice
from terminal.store import SecurityEvent, Store

logger = logging.getLogger(__name__)


class DoorModes:
    def __init__(self, flow: DoorFlow, gate: Gate, store: Store, clock: Clock) -> None:
        self.flow = flow
        self.gate = gate
        self.store = store
        self.clock = clock

    def restore(self) -> None:
        """At start: put the gate back into the mode HQ last ordered."""
        saved = self.store.state(MODE_STATE)
        if saved is None or saved == DoorMode.NORMAL:
            return
        self.flow.mode = DoorMode(saved)
        try:
            self.gate.set_mode(self.flow.mode)
        except DriverError as exc:
            logger.error("gate not put back into %s mode: %s", self.flow.mode, exc)
        logger.warning("door mode %s restored", self.flow.mode)

    def set(self, mode: str, *, reason: str, by: str) -> DoorMode:
        """Change the door mode: the board first, so a refusal there changes nothing here.

        Raises ``ValueError`` for an unknown mode, ``DriverError`` when the board did not take
        it, ``StoreError`` when it could not be recorded (the board has it then: a restart puts
        the previous mode back, which the security event of the failure explains).
        """
        new = DoorMode(mode)
        self.gate.set_mode(new)
        now = self.clock.now()
        self.store.put_state(MODE_STATE, new)
        self.flow.mode = new
        details = {"mode": str(new), "reason": reason, "by": by}
        self.store.record_event(
            SecurityEvent("door_mode", details), at=rfc3339(now), door=self.flow.settings.door_id
        )
        logger.warning("door mode %s ordered by %s: %s", new, by, reason)
        for listener in list(self.flow.listeners):
            try:
                listener(FlowNotice(now, Notice.MODE, str(new)))
            except Exception:
                logger.exception("flow listener failed")
        return new
