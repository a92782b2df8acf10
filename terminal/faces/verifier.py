"""The component the flows call: is the person at the camera this holder (1:1), or who is it (1:N)?

It owns the in-memory gallery of the encoder's model, loaded from the store and kept current one
holder at a time (:meth:`FaceVerifier.refresh`). It returns results, never decisions: the flow
turns a result into a transaction and, for a mismatch, a lending event with the evidence still.
Nothing here stores or logs a photo, a template or a name.

1:1 (card + face): good frames are gathered up to ``best_of``, the best of them is compared
once. A miss is retried up to ``attempts`` times before a mismatch is declared, so a holder who
looked away is not accused of lending; the false-accept rate of the whole attempt is then at
most ``attempts`` x the calibrated FAR.

1:N (face only, face pay): every good frame is searched; a holder is named when the best score
clears the threshold **and** leads the runner-up by the margin, in ``k`` of the last ``n`` good
frames. Liveness is checked on the frame that completed the agreement.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.camera.interface import Camera, Frame
from drivers.face.interface import FaceEncoder
from drivers.face.pipeline import FaceReading, read_face
from drivers.face.quality import Quality, Rejection, best_of
from drivers.face.settings import QualitySettings
from drivers.liveness.interface import AlwaysLive, LivenessCheck
from models.face import FaceOutcome
from models.matcher import (
    Agreement,
    Gallery,
    Identification,
    Outcome,
    StoreDType,
    Template,
    similarity,
)
from terminal.store.faces import FaceStore

logger = logging.getLogger(__name__)

__all__ = ["FaceOutcome", "FaceResult", "FaceVerifier", "VerifierSettings"]


@dataclass(frozen=True, slots=True)
class FaceResult:
    """``evidence`` is set only for MISMATCH and NOT_LIVE: the frame a security still is made of."""

    outcome: FaceOutcome
    holder_id: str | None = None
    score: float | None = None
    threshold: float | None = None
    frames: int = 0
    rejection: Rejection | None = None
    seconds: float = 0.0
    evidence: Frame | None = field(default=None, repr=False, compare=False)

    @property
    def matched(self) -> bool:
        return self.outcome is FaceOutcome.MATCH


@dataclass(frozen=True, slots=True)
class VerifierSettings:
    verify_threshold: float
    identify_threshold: float
    identify_margin: float = 0.03
    agreement: tuple[int, int] = (2, 3)
    best_of: int = 3
    attempts: int = 2
    gate: QualitySettings = field(default_factory=QualitySettings)
    max_gallery: int = 1000
    liveness_face_only: bool = True
    liveness_card_and_face: bool = False
    store: StoreDType = "float32"


Candidate = tuple[Frame, FaceReading]


class FaceVerifier:
    def __init__(
        self,
        *,
        camera: Camera,
        encoder: FaceEncoder,
        faces: FaceStore,
        settings: VerifierSettings,
        liveness: LivenessCheck | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera = camera
        self.encoder = encoder
        self.faces = faces
        self.settings = settings
        self.liveness: LivenessCheck = liveness or AlwaysLive()
        self.has_liveness = liveness is not None
        self.clock = clock
        self._lock = threading.Lock()
        self._gallery = Gallery(encoder.model_id, encoder.dim, store=settings.store)
        self._fingerprint: tuple[int, str] = (0, "")
        self.reload()

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    def gallery_size(self) -> int:
        with self._lock:
            return len(self._gallery)

    def reload(self) -> int:
        """Rebuild the gallery from the store (at start); returns the number of templates."""
        fingerprint = self.faces.fingerprint(self.model_id)
        gallery = Gallery(self.model_id, self.encoder.dim, store=self.settings.store)
        for row in self.faces.templates(self.model_id):
            if row.template.dim == self.encoder.dim:
                gallery.add(row.holder_id, row.template)
        with self._lock:
            self._gallery = gallery
            self._fingerprint = fingerprint
        logger.info("face gallery loaded: %d templates of model %s", len(gallery), self.model_id)
        return len(gallery)

    def reload_if_changed(self) -> bool:
        """Reload when the store's templates of this model changed since the last load (a cheap
        query: call it after each sync batch or every few seconds)."""
        if self.faces.fingerprint(self.model_id) == self._fingerprint:
            return False
        self.reload()
        return True

    def refresh(self, holder_id: str) -> None:
        """Re-read one holder's template after a sync change or an enrolment (no rebuild)."""
        template = self.faces.get_template(holder_id, self.model_id)
        with self._lock:
            if template is None or template.dim != self.encoder.dim:
                self._gallery.remove(holder_id)
            else:
                self._gallery.add(holder_id, template)

    def search(self, template: Template, k: int = 2) -> Identification:
        """One probe judged as 1:N judges a frame, without the camera (for diagnostics)."""
        s = self.settings
        with self._lock:
            return self._gallery.identify(
                template, threshold=s.identify_threshold, margin=s.identify_margin, k=k
            )

    def _frames(self, timeout: float) -> "_FrameSource":
        return _FrameSource(self, timeout)

    def verify(self, holder_id: str, timeout: float) -> FaceResult:
        """Card + face: is the person at the camera ``holder_id``? Waits up to ``timeout`` s."""
        s = self.settings
        with self._lock:
            reference = self._gallery.template(holder_id)
        if s.liveness_card_and_face and not self.has_liveness:
            return FaceResult(FaceOutcome.LIVENESS_UNAVAILABLE, holder_id)
        if reference is None:
            return FaceResult(FaceOutcome.NO_TEMPLATE, holder_id, threshold=s.verify_threshold)
        source = self._frames(timeout)
        attempts = 0
        best_score: float | None = None
        evidence: Frame | None = None
        while attempts < s.attempts:
            chosen = best_of(source.gather(s.best_of))
            if chosen is None:
                break  # time ran out without a usable face
            image, reading = chosen[1]
            assert reading.template is not None and reading.face is not None
            score = similarity(reading.template, reference)
            attempts += 1
            if score >= s.verify_threshold:
                if s.liveness_card_and_face:
                    live = self.liveness.check(image, reading.face)
                    if not live.live:
                        return source.result(
                            FaceOutcome.NOT_LIVE, holder_id, score, s.verify_threshold, image
                        )
                return source.result(FaceOutcome.MATCH, holder_id, score, s.verify_threshold)
            if best_score is None or score > best_score:
                best_score, evidence = score, image
        if attempts:
            return source.result(
                FaceOutcome.MISMATCH, holder_id, best_score, s.verify_threshold, evidence
            )
        return source.no_face(s.verify_threshold)

    def identify(self, timeout: float, *, liveness: bool | None = None) -> FaceResult:
        """Face only: who is at the camera? ``liveness`` overrides the configured requirement."""
        s = self.settings
        require_live = s.liveness_face_only if liveness is None else liveness
        with self._lock:
            size = len(self._gallery)
        if size > s.max_gallery:
            return FaceResult(FaceOutcome.GALLERY_TOO_LARGE, threshold=s.identify_threshold)
        if require_live and not self.has_liveness:
            # Never fall back to "everyone is live": a printed photo would open the gate.
            return FaceResult(FaceOutcome.LIVENESS_UNAVAILABLE, threshold=s.identify_threshold)
        if size == 0:
            return FaceResult(FaceOutcome.UNKNOWN, threshold=s.identify_threshold)
        agreement = Agreement(*s.agreement)
        source = self._frames(timeout)
        last = Outcome.BELOW_THRESHOLD
        best: float | None = None
        searched = False
        while not source.expired:
            got = source.next()
            if got is None:
                continue
            image, reading = got
            if reading.template is None or reading.face is None:
                continue
            with self._lock:
                found = self._gallery.identify(
                    reading.template, threshold=s.identify_threshold, margin=s.identify_margin
                )
            searched = True
            last = found.outcome
            best = found.score if best is None or (found.score or -1) > best else best
            agreed = agreement.push(found.key)
            if agreed is None:
                continue
            if require_live:
                live = self.liveness.check(image, reading.face)
                if not live.live:
                    return source.result(
                        FaceOutcome.NOT_LIVE, agreed, found.score, s.identify_threshold, image
                    )
            return source.result(FaceOutcome.MATCH, agreed, found.score, s.identify_threshold)
        if not searched:
            return source.no_face(s.identify_threshold)
        outcome = FaceOutcome.AMBIGUOUS if last is Outcome.AMBIGUOUS else FaceOutcome.UNKNOWN
        return source.result(outcome, None, best, s.identify_threshold)


class _FrameSource:
    """New frames from the camera until a deadline, each read through the encoder and gate."""

    def __init__(self, verifier: FaceVerifier, timeout: float) -> None:
        self.v = verifier
        self.started = verifier.clock()
        self.deadline = self.started + timeout
        self.seq = -1
        self.frames = 0
        self.camera_frames = 0
        self.rejection: Rejection | None = None

    @property
    def expired(self) -> bool:
        return self.v.clock() >= self.deadline

    def next(self) -> Candidate | None:
        remaining = self.deadline - self.v.clock()
        if remaining <= 0:
            return None
        captured = self.v.camera.latest(self.seq, timeout=min(remaining, 0.5))
        if captured is None:
            return None
        self.seq = captured.seq
        self.camera_frames += 1
        reading = read_face(self.v.encoder, captured.image, self.v.settings.gate)
        self.frames += 1
        if not reading.ok:
            self.rejection = reading.rejection
        return captured.image, reading

    def gather(self, count: int) -> list[tuple[Quality, Candidate]]:
        """Up to ``count`` frames that passed the gate, or fewer when the time runs out."""
        good: list[tuple[Quality, Candidate]] = []
        while len(good) < count and not self.expired:
            got = self.next()
            if got is not None and got[1].quality is not None and got[1].ok:
                good.append((got[1].quality, got))
        return good

    def result(
        self,
        outcome: FaceOutcome,
        holder_id: str | None,
        score: float | None,
        threshold: float,
        evidence: Frame | None = None,
    ) -> FaceResult:
        return FaceResult(
            outcome,
            holder_id,
            None if score is None else round(float(score), 4),
            threshold,
            self.frames,
            self.rejection,
            round(self.v.clock() - self.started, 3),
            evidence,
        )

    def no_face(self, threshold: float) -> FaceResult:
        outcome = FaceOutcome.CAMERA_FAULT if self.camera_frames == 0 else FaceOutcome.NO_FACE
        return self.result(outcome, None, None, threshold)
