"""Face pay at a POS: the customer presses the face key instead of tapping a card (1:N).

The verifier names a holder among the enrolled ones; the payment is then decided on the holder's
current card exactly as a tap of that card would be. A 1:N match can name the wrong person, so
nothing is charged until the customer has seen the (masked) name and the amount on the display
and pressed OK: that is asked before any PIN prompt, so a customer taken for somebody else is
never asked for that person's PIN and cannot count a failure against their account.

Nobody identified (unknown, ambiguous, no face, the check unavailable) is not a decision: nothing
is journalled and the amount stays entered for a card. A recognised face that fails liveness is
journalled as a denial with a ``face_spoof`` event and, if configured, the frame as a still.
"""

import logging
from dataclasses import replace
from datetime import datetime

from models.cards import FaceCredential
from models.decide import decide
from models.decision import Alert, Decision
from models.errors import DriverError
from models.pos import PosRequest, PosView
from models.reasons import Reason
from models.wallet import Payment
from terminal.faces.evidence import FaceUse, keep_still
from terminal.faces.verifier import FaceOutcome, FaceResult
from terminal.store.journal import Committed

logger = logging.getLogger(__name__)

# What the display says when nobody was identified; everything else is "unavailable: use a card".
_NOT_IDENTIFIED: dict[FaceOutcome, Reason] = {
    FaceOutcome.UNKNOWN: Reason.FACE_UNKNOWN,
    FaceOutcome.AMBIGUOUS: Reason.FACE_UNKNOWN,
    FaceOutcome.NO_FACE: Reason.FACE_REQUIRED,
}

# Denials that only wait for an answer at the till; the payment behind them is still possible.
_PROMPTS = (Reason.PIN_REQUIRED, Reason.DUPLICATE_TAP)


def score_milli(result: FaceResult) -> int | None:
    """The score in thousandths: the journal's canonical records carry integers only."""
    return None if result.score is None else round(result.score * 1000)


def not_identified_reason(result: FaceResult) -> Reason:
    """What to show for a result that names nobody who may pay."""
    return _NOT_IDENTIFIED.get(result.outcome, Reason.FACE_UNAVAILABLE)


def credential(result: FaceResult) -> FaceCredential:
    if not result.matched or result.holder_id is None:
        raise ValueError("only a match names a holder who may pay")
    return FaceCredential(result.holder_id, score_milli(result) or 0)


def spoof_denial(result: FaceResult, card_number: str | None) -> Decision:
    """The journalled denial of a recognised face that failed the liveness check."""
    detail = "face not_live"
    if result.score is not None and result.threshold is not None:
        detail += f", score {result.score:.3f} >= {result.threshold:.3f}"
    return Decision.deny(
        Reason.FACE_NOT_LIVE,
        holder_id=result.holder_id,
        card_number=card_number,
        alert=Alert.FACE_SPOOF,
        detail=detail,
    )


def event_detail(result: FaceResult) -> dict[str, object]:
    detail: dict[str, object] = {"face": str(result.outcome)}
    milli = score_milli(result)
    if milli is not None and result.threshold is not None:
        detail["score_milli"] = milli
        detail["threshold_milli"] = round(result.threshold * 1000)
    return detail


def would_pay(
    request: PosRequest, decision: Decision, view: PosView, now: datetime
) -> Payment | None:
    """The payment ``decision`` leads to if the customer answers the PIN and duplicate-charge
    prompts; ``None`` when the rules refuse it whatever they answer."""
    if decision.payment is not None:
        return decision.payment
    if decision.reason not in _PROMPTS:
        return None
    # Only to know the amount and split to show; the real answers are asked for afterwards.
    hypothetical = replace(request, pin_ok=True, confirmed_duplicate=True)
    return decide(hypothetical, view, now).payment


class PosFaces(FaceUse):
    """The POS flow's access to faces: identification, and the evidence of a spoof."""

    def identify(self) -> FaceResult:
        """Who is at the camera, with liveness as configured for face-only use."""
        try:
            result = self.verifier.identify(self.seconds)
        except DriverError as exc:
            # The till must keep taking cards when the camera is gone.
            logger.warning("face pay: %s", exc)
            return FaceResult(FaceOutcome.CAMERA_FAULT)
        logger.info(
            "face pay %s",
            result.outcome,
            extra={"holder": result.holder_id, "score": result.score, "frames": result.frames},
        )
        return result

    def keep_evidence(self, result: FaceResult, committed: Committed, at: datetime) -> None:
        """The frame that failed liveness, as a still of the security event, if configured."""
        keep_still(
            self.faces,
            result.evidence,
            kind=str(Alert.FACE_SPOOF),
            at=at,
            retention=self.retention,
            holder_id=result.holder_id,
            tx_seq=committed.seq,
        )
