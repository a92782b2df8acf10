"""The authorization core: one entry point for every kind of request."""

from datetime import datetime

from models.correction import CorrectionRequest, CorrectionView, decide_correction
from models.decision import Decision
from models.door import DoorRequest, DoorView, decide_door
from models.pos import PosRequest, PosView, decide_pos

Request = DoorRequest | PosRequest | CorrectionRequest
View = DoorView | PosView | CorrectionView


def decide(request: Request, view: View, now: datetime) -> Decision:
    """Decide ``request`` against ``view`` at site-local time ``now``. Pure and deterministic.

    An allowed payment or correction carries its :class:`~models.wallet.Payment`.
    """
    if isinstance(request, DoorRequest) and isinstance(view, DoorView):
        return decide_door(request, view, now)
    if isinstance(request, PosRequest) and isinstance(view, PosView):
        return decide_pos(request, view, now)
    if isinstance(request, CorrectionRequest) and isinstance(view, CorrectionView):
        return decide_correction(request, view, now)
    raise TypeError(f"no rules for {type(request).__name__} with {type(view).__name__}")
