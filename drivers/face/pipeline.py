"""One frame through one encoder: detect, pick the face being served, gate it, embed it."""

from dataclasses import dataclass

from drivers.camera.interface import Frame
from drivers.face.interface import Detection, FaceEncoder
from drivers.face.quality import Quality, Rejection, assess, primary
from drivers.face.settings import QualitySettings
from models.matcher import Template

# A second face at least this large (eye distance relative to the main face) is another person
# standing as close, not a bystander in the background.
_RIVAL_SIZE = 0.6


@dataclass(frozen=True, slots=True)
class FaceReading:
    """What one frame gave: the face dealt with, its quality, its template when it passed."""

    faces: int
    face: Detection | None
    quality: Quality | None
    template: Template | None
    rejection: Rejection | None

    @property
    def ok(self) -> bool:
        return self.template is not None


def read_face(
    encoder: FaceEncoder,
    frame: Frame,
    gate: QualitySettings,
    *,
    single: bool = False,
) -> FaceReading:
    """Analyse ``frame``. ``single`` (enrolment) rejects a frame with a second face of similar
    size; otherwise the largest, most central face is used and bystanders are ignored."""
    faces = encoder.detect(frame)
    face = primary(faces, frame)
    if face is None:
        return FaceReading(0, None, None, None, Rejection.NO_FACE)
    if single:
        rivals = [
            f for f in faces if f is not face and f.eye_distance >= _RIVAL_SIZE * face.eye_distance
        ]
        if rivals:
            return FaceReading(len(faces), face, None, None, Rejection.MULTIPLE_FACES)
    quality = assess(frame, face, gate)
    if not quality.ok:
        return FaceReading(len(faces), face, quality, None, quality.rejections[0])
    return FaceReading(len(faces), face, quality, encoder.embed(frame, face), None)
