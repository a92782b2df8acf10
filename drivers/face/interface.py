"""What a face encoder returns and the Protocols its parts implement."""

from dataclasses import dataclass
from typing import Protocol

from drivers.camera.interface import Frame
from models.matcher import Template

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Landmarks:
    """Five points in frame pixels. "Right eye" is the subject's right eye (left in the image).

    Mouth corners are ``None`` for detectors that do not give them (dlib's 5-point model gives
    the eye corners and the base of the nose instead).
    """

    right_eye: Point
    left_eye: Point
    nose: Point
    mouth_right: Point | None = None
    mouth_left: Point | None = None


@dataclass(frozen=True, slots=True)
class Detection:
    """One face: box ``(x, y, w, h)`` in frame pixels, landmarks, and the detector's score
    (YuNet: a probability; dlib HOG: the SVM margin squashed into 0..1)."""

    box: tuple[float, float, float, float]
    landmarks: Landmarks
    score: float

    @property
    def centre(self) -> Point:
        x, y, w, h = self.box
        return (x + w / 2, y + h / 2)

    @property
    def eye_distance(self) -> float:
        (x1, y1), (x2, y2) = self.landmarks.right_eye, self.landmarks.left_eye
        return float(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5)


class FaceDetector(Protocol):
    """Finds faces in a frame."""

    def detect(self, frame: Frame) -> list[Detection]:
        """Every face found, in no particular order; an empty list when there is none."""
        ...


class FaceRecognizer(Protocol):
    """Turns one detected face into a template of its model."""

    @property
    def model_id(self) -> str:
        """Identifies the weights: templates of different ids are never compared."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, frame: Frame, face: Detection) -> Template:
        """Align the face by its landmarks and compute its template."""
        ...


class LandmarkRefiner(Protocol):
    """Gives a detected face more precise landmarks before it is aligned and embedded."""

    def refine(self, frame: Frame, face: Detection) -> Detection:
        """``face`` with better landmarks, or ``face`` itself when there is nothing to gain."""
        ...


class FaceEncoder(FaceDetector, FaceRecognizer, Protocol):
    """A detector and a recognizer that work together (one backend)."""

    @property
    def name(self) -> str:
        """The backend's name as configured ("onnx", "dlib")."""
        ...


@dataclass(frozen=True, slots=True)
class Encoder:
    """The usual :class:`FaceEncoder`: any detector with any recognizer, and optionally a
    refiner run on the one face being embedded (not on every face found)."""

    name: str
    detector: FaceDetector
    recognizer: FaceRecognizer
    refiner: LandmarkRefiner | None = None
    # What shapes the templates besides the model: detector, refinement and preprocessing
    # settings and the pipeline's revision, as a digest; a cache of encodings is keyed by it.
    recipe: str = ""

    @property
    def model_id(self) -> str:
        return self.recognizer.model_id

    @property
    def dim(self) -> int:
        return self.recognizer.dim

    def detect(self, frame: Frame) -> list[Detection]:
        return self.detector.detect(frame)

    def embed(self, frame: Frame, face: Detection) -> Template:
        if self.refiner is not None:
            face = self.refiner.refine(frame, face)
        return self.recognizer.embed(frame, face)
