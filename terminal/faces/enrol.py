"""Enrolment: a template from a registration photo, or a clear reason why not.

The seed photo spec is a 600 x 480 JPEG of 50-100 KB on a light-blue background, one person. A
photo is rejected when it has no face, two faces of similar size, a face too small or too blurry
(stricter limits than at the gate: an enrolment template is compared thousands of times), or a
turned head. HQ's registration photos arrive through sync (``face.upsert`` with a photo) and are
deleted as soon as they are enrolled or rejected: the terminal keeps templates, not photos.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from drivers.camera.images import decode_image
from drivers.camera.interface import Frame
from drivers.face.interface import FaceEncoder
from drivers.face.pipeline import read_face
from drivers.face.quality import Quality, Rejection
from drivers.face.settings import QualitySettings
from models.errors import DriverError
from models.matcher import Template
from terminal.store.faces import FaceStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Enrolment:
    template: Template | None
    rejection: Rejection | None
    quality: Quality | None
    faces: int

    @property
    def ok(self) -> bool:
        return self.template is not None


def enrol_image(encoder: FaceEncoder, image: Frame, gate: QualitySettings) -> Enrolment:
    reading = read_face(encoder, image, gate, single=True)
    return Enrolment(reading.template, reading.rejection, reading.quality, reading.faces)


def enrol_photo(encoder: FaceEncoder, photo: bytes, gate: QualitySettings) -> Enrolment:
    """``DriverError`` when the bytes are not an image at all."""
    return enrol_image(encoder, decode_image(photo), gate)


@dataclass(frozen=True, slots=True)
class PendingResult:
    enrolled: list[str]
    rejected: dict[str, str]


def enrol_pending(
    faces: FaceStore,
    encoder: FaceEncoder,
    gate: QualitySettings,
    *,
    now: datetime,
    limit: int = 100,
) -> PendingResult:
    """Enrol the registration photos HQ sent; each photo is deleted once handled."""
    enrolled: list[str] = []
    rejected: dict[str, str] = {}
    for pending in faces.pending_photos(limit):
        try:
            result = enrol_photo(encoder, pending.photo, gate)
            reason = None if result.ok else str(result.rejection)
        except DriverError as exc:
            result, reason = None, f"unreadable: {exc}"
        template = result.template if result is not None else None
        faces.finish_photo(pending.holder_id, template, at=now)
        if template is not None:
            enrolled.append(pending.holder_id)
        else:
            rejected[pending.holder_id] = reason or "rejected"
            logger.warning(
                "registration photo rejected: %s", reason, extra={"holder": pending.holder_id}
            )
    return PendingResult(enrolled, rejected)
