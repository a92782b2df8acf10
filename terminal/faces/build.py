"""Composing the face parts from the ``[faces]`` section, for the composition root (app.py).

Order: camera, encoder (verifies model files), liveness (exports or finds its ONNX files), store
access, verifier (loads the gallery). Anything missing fails here, at start, with a
:class:`DriverError` that names the file or package, not at the first tap.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from drivers.camera.interface import Camera
from drivers.camera.opencv import OpenCVCamera
from drivers.camera.sim import SimCamera, SimCameraControl
from drivers.face.backends import build_encoder
from drivers.face.interface import Encoder
from drivers.liveness.interface import LivenessCheck
from drivers.liveness.runner import MiniFASNetLiveness
from terminal.config.faces import FacesSection
from terminal.faces.enrol import PendingResult, enrol_pending
from terminal.faces.switch import ModelChoice, choose
from terminal.faces.verifier import FaceVerifier, VerifierSettings
from terminal.store import Store
from terminal.store.faces import FaceStore

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class FaceParts:
    camera: Camera
    encoder: Encoder
    liveness: LivenessCheck | None
    faces: FaceStore
    verifier: FaceVerifier
    section: FacesSection
    choice: ModelChoice

    @property
    def switch_due(self) -> bool:
        """Templates of the model being switched to now cover enough holders: restart into it."""
        return self.choice.due(self.faces)

    def enrol_pending(self, now: datetime) -> PendingResult:
        """Enrol registration photos HQ sent, then bring the gallery up to date."""
        result = enrol_pending(
            self.faces, self.encoder, self.section.quality.for_enrolment(), now=now
        )
        for holder_id in result.enrolled:
            self.verifier.refresh(holder_id)
        return result

    def housekeeping(self, now: datetime) -> None:
        """Run periodically: expire stills, follow template changes made by sync."""
        expired = self.faces.expire_stills(now)
        if expired:
            logger.info("%d security stills reached the end of their retention", expired)
        self.verifier.reload_if_changed()

    def close(self) -> None:
        self.camera.close()


def build_face_parts(
    section: FacesSection, store: Store, sim_camera: SimCameraControl | None = None
) -> FaceParts:
    """``sim_camera`` is the demo's and tests' control when ``camera.driver`` is ``sim``."""
    if section.camera.driver == "sim":
        control = sim_camera or SimCameraControl(section.camera.width, section.camera.height)
        camera: Camera = SimCamera(control)
    else:
        camera = OpenCVCamera(section.camera)
    try:
        faces = FaceStore(store)
        choice = choose(section, faces)
        encoder = build_encoder(section.encoder_settings(choice.kind))  # type: ignore[arg-type]
        liveness: LivenessCheck | None = None
        if section.liveness.models:
            liveness = MiniFASNetLiveness(section.liveness)
        verify, identify = section.thresholds(encoder.model_id)
        quality = section.quality
        settings = VerifierSettings(
            verify_threshold=verify,
            identify_threshold=identify,
            identify_margin=section.identify_margin,
            agreement=section.agreement,
            best_of=section.best_of,
            attempts=section.attempts,
            gate=quality,
            max_gallery=section.gallery_limit(encoder.model_id),
            liveness_face_only=section.liveness.face_only,
            liveness_card_and_face=section.liveness.card_and_face,
            store=section.store,
        )
        verifier = FaceVerifier(
            camera=camera, encoder=encoder, faces=faces, settings=settings, liveness=liveness
        )
    except BaseException:
        camera.close()
        raise
    if choice.target_model is not None:
        covered = faces.coverage(choice.target_model)
        logger.info(
            "face model %s in use; switching to %s once %.0f %% of holders have its templates "
            "(now %.1f %%)",
            encoder.model_id, choice.target_model, 100 * section.switch_share, 100 * covered,
        )  # fmt: skip
    return FaceParts(camera, encoder, liveness, faces, verifier, section, choice)
