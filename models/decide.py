"""The authorization core: one entry point for every kind of request."""

from datetime import datetime

from models.decision import Decision
from models.door import DoorRequest, DoorView, decide_door

Request = DoorRequest
View = DoorView


def decide(request: Request, view: View, now: datetime) -> Decision:
    """Decide ``request`` against ``view`` at site-local time ``now``. Pure and deterministic."""
    return decide_door(request, view, now)
