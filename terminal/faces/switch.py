"""Changing the face model in the field, without a day on which nobody's face is known.

HQ sends templates of the new model beside the old ones (each template names its model). The
terminal keeps deciding with the recognizer in use until the share of holders with a template
of the new model reaches ``faces.switch_share``; then it restarts into the new one, because a
running verifier holds one encoder and one gallery. Which recognizer a start uses follows from
the config and the store alone, so a terminal restarted for any reason lands on the same one.

Every change of model in use is journalled as a ``face_model`` event (uploaded like any
security event) and kept in the store, so ``ykt diag face`` and HQ can tell which model a
decision was made with: the one in use since the newest ``face_model`` event before it.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from models.errors import StoreError
from models.timefmt import rfc3339
from terminal.config.faces import FacesSection
from terminal.store import SecurityEvent, Store
from terminal.store.faces import FaceStore

logger = logging.getLogger(__name__)

# The store's record of the model decisions are being made with, and since when.
IN_USE_STATE = "face_model_in_use"
SINCE_STATE = "face_model_since"


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """Which recognizer this start uses, and the change it is waiting for, if any."""

    kind: str
    model_id: str | None
    target_kind: str | None = None
    target_model: str | None = None
    share_needed: float | None = None

    def due(self, faces: FaceStore) -> bool:
        """The pending change has enough templates to be made now."""
        if self.target_model is None or self.share_needed is None:
            return False
        return faces.coverage(self.target_model) >= self.share_needed


def choose(section: FacesSection, faces: FaceStore) -> ModelChoice:
    """The recognizer a start should use: the one switched to once its templates cover
    ``switch_share`` of the holders, else the configured one (waiting for that)."""
    current = section.recognizer_kind
    if section.switch_to is None:
        return ModelChoice(current, section.expected_model_id())
    target = section.model_id_of(section.switch_to)
    if target is not None and faces.coverage(target) >= section.switch_share:
        return ModelChoice(section.switch_to, target)
    return ModelChoice(
        current,
        section.model_id_of(current),
        target_kind=section.switch_to,
        target_model=target,
        share_needed=section.switch_share,
    )


def note_model_in_use(store: Store, faces: FaceStore, model_id: str, now: datetime) -> None:
    """Journal a change of the model decisions are made with (nothing when it is the same)."""
    before = store.state(IN_USE_STATE)
    if before == model_id:
        return
    at = rfc3339(now)
    # Canonical records carry integers: the share of holders with its templates, per mille.
    permille = round(1000 * faces.coverage(model_id))
    detail = {"model": model_id, "previous": before, "coverage_permille": permille}
    try:
        store.record_event(SecurityEvent("face_model", detail), at=at, door=None)
        store.put_state(IN_USE_STATE, model_id)
        store.put_state(SINCE_STATE, at)
    except StoreError as exc:  # the decision path does not depend on this record
        logger.error("could not record the face model in use: %s", exc)
        return
    logger.info("face model in use: %s (before: %s)", model_id, before or "none")
