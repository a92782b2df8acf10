"""The authorization core: one entry point for every kind of request.

Every decision the terminal journals is made here: taps and faces at doors (with the door mode
and the face evidence), HQ's remote open, the passage record after the gate reported, payments
(with the answers to the till's prompts) and corrections. A decision that still needs something
(:attr:`~models.decision.Decision.need`) is asked again with the answer.
"""

from datetime import datetime

from models.correction import CorrectionRequest, CorrectionView, decide_correction
from models.decision import Decision
from models.door import (
    DoorRequest,
    DoorView,
    PassageRequest,
    RemoteOpenRequest,
    decide_door,
    decide_passage,
    decide_remote_open,
)
from models.pos import PosRequest, PosView, decide_pos

Request = DoorRequest | PosRequest | CorrectionRequest | RemoteOpenRequest | PassageRequest
View = DoorView | PosView | CorrectionView


def decide(request: Request, view: View | None, now: datetime) -> Decision:
    """Decide ``request`` against ``view`` at site-local time ``now``. Pure and deterministic.

    A remote open and a passage need no view (``None``). An allowed payment or correction
    carries its :class:`~models.wallet.Payment`.
    """
    if isinstance(request, DoorRequest) and isinstance(view, DoorView):
        return decide_door(request, view, now)
    if isinstance(request, PosRequest) and isinstance(view, PosView):
        return decide_pos(request, view, now)
    if isinstance(request, CorrectionRequest) and isinstance(view, CorrectionView):
        return decide_correction(request, view, now)
    if isinstance(request, RemoteOpenRequest):
        return decide_remote_open(request)
    if isinstance(request, PassageRequest):
        return decide_passage(request)
    raise TypeError(f"no rules for {type(request).__name__} with {type(view).__name__}")
