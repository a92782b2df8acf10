"""Face templates computed at HQ from registration photos, for ``ykt hq import --templates``.

The template is the one the terminals compute themselves (same model id, same
enrolment quality gate), so a terminal uses it as if it had enrolled the photo on the device.
``--templates config`` takes backend, recognizer, model files and gate from a terminal's
``[faces]`` section: the way to compute templates of an operator-supplied model (ncnn, ONNX).
"""

from pathlib import Path

from devtools.hq.importer import FaceEncoding
from drivers.face.backends import build_encoder
from drivers.face.settings import EncoderSettings, YuNetSettings
from drivers.face.yunet import YUNET_2023MAR_SHA256
from models.errors import ConfigError, DriverError
from sync.envelope import b64encode
from terminal.config.faces import FacesSection
from terminal.faces.cli import load_faces_config
from terminal.faces.enrol import enrol_photo


def photo_encoder(
    backend: str, yunet: Path | None, faces_config: Path | None = None
) -> FaceEncoding:
    """A function from JPEG bytes to a ``face.upsert`` body; ``ValueError`` says why a photo is
    refused. Fails at once (``DriverError``) when the backend or its model is missing."""
    if backend not in ("onnx", "dlib", "config"):
        raise ValueError(f"unknown face backend {backend!r}: onnx, dlib or config")
    if backend == "onnx" and yunet is None:
        raise ValueError("--templates onnx needs --yunet (face_detection_yunet_2023mar.onnx)")
    if backend == "config":
        if faces_config is None:
            raise ValueError("--templates config needs --faces-config (a terminal's config file)")
        try:
            section, _ = load_faces_config(faces_config)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        settings = section.encoder_settings()
    else:
        section = FacesSection()
        settings = EncoderSettings(
            backend="onnx" if backend == "onnx" else "dlib",
            recognizer="dlib",
            yunet=None if yunet is None else YuNetSettings(path=yunet, sha256=YUNET_2023MAR_SHA256),
        )
    encoder = build_encoder(settings)
    gate = section.quality.for_enrolment()

    def encode(photo: bytes) -> dict[str, str]:
        try:
            enrolled = enrol_photo(encoder, photo, gate)
        except DriverError as exc:
            raise ValueError(f"unreadable: {exc}") from None
        if enrolled.template is None:
            raise ValueError(str(enrolled.rejection))
        vector = enrolled.template.vector.astype("<f4")
        return {"template": b64encode(vector.tobytes()), "model": enrolled.template.model}

    return encode
