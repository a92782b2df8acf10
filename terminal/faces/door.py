"""Card + face at a door: the face step between ``decide()`` and the commit.

``decide()`` says whether the card may pass; when the door (or the holder) requires a face, the
verifier then checks that the person at the camera is the card's holder within the configured
time. Only an allowed decision is checked (a denied card is denied whatever the face), and the
face outcome replaces it with a deny when the face does not match: the journal records one
decision per tap, with the face score. A mismatch raises a ``card_lending`` security event, and
the frame that did not match is kept as a still for the configured retention; a passage that
matched keeps no image.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from models.cards import Holder
from models.decision import Alert, Decision
from models.reasons import Reason
from terminal.faces.evidence import FaceUse, keep_still
from terminal.faces.verifier import FaceOutcome, FaceResult
from terminal.store.journal import Committed

logger = logging.getLogger(__name__)

# What a failed face step turns an allowed card decision into.
_DENIALS: dict[FaceOutcome, tuple[Reason, Alert | None]] = {
    FaceOutcome.MISMATCH: (Reason.FACE_MISMATCH, Alert.CARD_LENDING),
    FaceOutcome.NOT_LIVE: (Reason.FACE_NOT_LIVE, Alert.FACE_SPOOF),
    FaceOutcome.NO_TEMPLATE: (Reason.FACE_NOT_ENROLLED, None),
    FaceOutcome.NO_FACE: (Reason.FACE_REQUIRED, None),
    FaceOutcome.CAMERA_FAULT: (Reason.FACE_UNAVAILABLE, None),
}


def card_and_face(decision: Decision, result: FaceResult) -> Decision:
    """The final decision of a card + face tap."""
    if result.matched:
        return decision
    reason, alert = _DENIALS.get(result.outcome, (Reason.FACE_UNAVAILABLE, None))
    detail = f"face {result.outcome}"
    if result.rejection is not None and result.outcome is FaceOutcome.NO_FACE:
        # Why no frame was usable (too small, blurry, turned away): what the person can fix.
        detail += f" ({result.rejection})"
    if result.score is not None:
        detail += f", score {result.score:.3f} < {result.threshold:.3f}"
    return Decision.deny(
        reason,
        holder_id=decision.holder_id,
        card_number=decision.card_number,
        alert=alert,
        detail=detail,
    )


@dataclass(frozen=True, slots=True)
class FaceStep:
    decision: Decision
    result: FaceResult

    @property
    def score_milli(self) -> int | None:
        """The score in thousandths: the journal's canonical records carry integers only."""
        return None if self.result.score is None else round(self.result.score * 1000)

    def event_detail(self) -> dict[str, int | str]:
        detail: dict[str, int | str] = {"face": str(self.result.outcome)}
        if self.score_milli is not None and self.result.threshold is not None:
            detail["score_milli"] = self.score_milli
            detail["threshold_milli"] = round(self.result.threshold * 1000)
        return detail


class DoorFaces(FaceUse):
    """The door flow's access to faces: when a face is required, the check, the evidence."""

    @staticmethod
    def required(mode: str, holder: Holder | None) -> bool:
        """``mode`` is the door's ``face`` setting: off, holder (only holders marked
        require_face by HQ) or always."""
        if mode == "always":
            return True
        return mode == "holder" and holder is not None and holder.require_face

    def check(self, decision: Decision) -> FaceStep:
        if not decision.allowed or decision.holder_id is None:
            raise ValueError("only an allowed decision for a known holder needs a face check")
        result = self.verifier.verify(decision.holder_id, self.seconds)
        logger.info(
            "card+face %s",
            result.outcome,
            extra={"holder": decision.holder_id, "score": result.score, "frames": result.frames},
        )
        return FaceStep(card_and_face(decision, result), result)

    def keep_evidence(self, step: FaceStep, committed: Committed, at: datetime) -> None:
        """Store the mismatching frame as a still of the security event, if configured."""
        if step.decision.alert is None:
            return
        keep_still(
            self.faces,
            step.result.evidence,
            kind=str(step.decision.alert),
            at=at,
            retention=self.retention,
            holder_id=step.decision.holder_id,
            tx_seq=committed.seq,
        )
