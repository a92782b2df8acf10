"""Face evidence as the rules see it: what a 1:1 or 1:N check found, and what that means.

The verifier (terminal/faces) produces the evidence from camera frames; ``decide()`` turns it into
the decision. Scores are in thousandths because journal records carry integers only.
"""

from dataclasses import dataclass
from enum import StrEnum

from models.decision import Alert
from models.reasons import Reason


class FaceOutcome(StrEnum):
    """What a face check found."""

    MATCH = "match"
    MISMATCH = "mismatch"  # 1:1: a good face that is not the holder's (lending suspected)
    NO_TEMPLATE = "no_template"  # 1:1: the holder has no template of this model
    NO_FACE = "no_face"  # no usable face before the time ran out (``rejection`` says why)
    NOT_LIVE = "not_live"  # the matching face failed the liveness check
    UNKNOWN = "unknown"  # 1:N: nobody close enough
    AMBIGUOUS = "ambiguous"  # 1:N: two holders about as close
    GALLERY_TOO_LARGE = "gallery_too_large"  # 1:N refused: more templates than calibrated for
    CAMERA_FAULT = "camera_fault"  # no frame at all from the camera
    LIVENESS_UNAVAILABLE = "liveness_unavailable"  # required, but no liveness check configured


@dataclass(frozen=True, slots=True)
class FaceEvidence:
    """The outcome of the 1:1 check a card + face door asked for."""

    outcome: FaceOutcome
    score_milli: int | None = None
    threshold_milli: int | None = None
    rejection: str | None = None  # why no frame was usable (too small, blurry, turned away)

    @property
    def matched(self) -> bool:
        return self.outcome is FaceOutcome.MATCH

    def describe(self) -> str:
        """The decision's detail: the outcome, why no frame was usable, the score vs threshold."""
        text = f"face {self.outcome}"
        if self.rejection is not None and self.outcome is FaceOutcome.NO_FACE:
            text += f" ({self.rejection})"
        if self.score_milli is not None and self.threshold_milli is not None:
            score, threshold = self.score_milli / 1000, self.threshold_milli / 1000
            text += f", score {score:.3f} {'>=' if score >= threshold else '<'} {threshold:.3f}"
        return text

    def event_detail(self) -> tuple[tuple[str, int | str], ...]:
        detail: list[tuple[str, int | str]] = [("face", str(self.outcome))]
        if self.score_milli is not None and self.threshold_milli is not None:
            detail += [("score_milli", self.score_milli), ("threshold_milli", self.threshold_milli)]
        return tuple(detail)


# What a failed 1:1 check turns an admissible card into.
FACE_DENIALS: dict[FaceOutcome, tuple[Reason, Alert | None]] = {
    FaceOutcome.MISMATCH: (Reason.FACE_MISMATCH, Alert.CARD_LENDING),
    FaceOutcome.NOT_LIVE: (Reason.FACE_NOT_LIVE, Alert.FACE_SPOOF),
    FaceOutcome.NO_TEMPLATE: (Reason.FACE_NOT_ENROLLED, None),
    FaceOutcome.NO_FACE: (Reason.FACE_REQUIRED, None),
    FaceOutcome.CAMERA_FAULT: (Reason.FACE_UNAVAILABLE, None),
}

# What a person is told when a 1:N search named nobody who may use the face (not a decision:
# nobody is identified, so nothing is journalled).
_NOT_IDENTIFIED: dict[FaceOutcome, Reason] = {
    FaceOutcome.UNKNOWN: Reason.FACE_UNKNOWN,
    FaceOutcome.AMBIGUOUS: Reason.FACE_UNKNOWN,
    FaceOutcome.NO_FACE: Reason.FACE_REQUIRED,
}


def not_identified_reason(outcome: FaceOutcome) -> Reason:
    """What to show for a 1:N result that names nobody; anything else: "use your card"."""
    return _NOT_IDENTIFIED.get(outcome, Reason.FACE_UNAVAILABLE)
