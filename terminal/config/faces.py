"""The ``[faces]`` section of the terminal's configuration.

Safe defaults: faces are off until enabled; thresholds default to the values calibrated for the
recognizer's model (docs/faces.md) and a recognizer the project has not calibrated must be given
explicit thresholds; model files are named by path **and** sha256; face-only (1:N) passage
requires liveness unless the operator turns that off on purpose.
"""

from datetime import timedelta
from typing import Literal

from pydantic import Field, model_validator

from drivers.camera.settings import CameraSettings
from drivers.face.modelfile import ModelFile
from drivers.face.settings import (
    DLIB_MODEL_ID,
    MOBILEFACENET_BIN_SHA256,
    MOBILEFACENET_PARAM_SHA256,
    DlibHogSettings,
    EncoderSettings,
    NcnnRecognizerSettings,
    OnnxRecognizerSettings,
    QualitySettings,
    RecognizerKind,
    YuNetSettings,
    ncnn_model_id,
)
from drivers.liveness.settings import MiniFASNetSettings
from models.settings import Section

_MOBILEFACENET = ncnn_model_id(MOBILEFACENET_PARAM_SHA256, MOBILEFACENET_BIN_SHA256)

# Calibrated on lfw-dev (docs/faces.md): cosine thresholds at FAR 1e-4 (1:1) and the per-comparison
# FAR the default 1:N gallery limit needs. Only models listed here have defaults.
CALIBRATED: dict[str, tuple[float, float]] = {
    DLIB_MODEL_ID: (0.94, 0.951),
    # MobileFaceNet-ArcFace (development weights; a site's own model has its own id and needs its
    # own calibration). Landmarks refined below 80 px between the eyes, no flip.
    _MOBILEFACENET: (0.40, 0.50),
}
# Gallery size at which 1:N, at the calibrated identify threshold, keeps FPIR at about 1 %
# (docs/faces.md, capacity); other models get the general default.
CALIBRATED_GALLERY: dict[str, int] = {DLIB_MODEL_ID: 1000, _MOBILEFACENET: 2000}
DEFAULT_GALLERY = 1000


class LivenessSection(MiniFASNetSettings):
    """Presentation-attack detection (a photo or a screen held up to the camera), and where the
    terminal requires it."""

    face_only: bool = Field(
        True, description="Require liveness for face-only (1:N) passage and face pay."
    )
    card_and_face: bool = Field(False, description="Require liveness for card + face too.")


class FacesSection(Section):
    """Face recognition: card+face (1:1), face-only gates and face pay (1:N)."""

    enabled: bool = Field(False, description="Use the camera and face matching at all.")
    backend: Literal["onnx", "dlib"] = Field(
        "onnx",
        description="onnx: YuNet detection + the recognizer below; dlib: HOG + dlib ResNet.",
    )
    recognizer: Literal["ncnn", "dlib", "sface", "onnx"] | None = Field(
        None,
        description="Recognizer of the onnx backend: ncnn, sface or onnx (weights provided by "
        "the operator) or dlib (ResNet, from a package); empty: ncnn when faces.ncnn is set, "
        "else dlib.",
    )
    switch_to: Literal["ncnn", "dlib", "sface", "onnx"] | None = Field(
        None,
        description="A second recognizer (configured in its own section) taken into use once HQ "
        "has sent templates of its model for switch_share of the enrolled holders; until then "
        "the recognizer above decides. Empty: no model change under way.",
    )
    switch_share: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Share of the holders with a template who must have one of switch_to's "
        "model before the terminal changes to it (it restarts to do so).",
    )
    switch_thresholds: tuple[float, float] | None = Field(
        None,
        description="[verify, identify] cosine thresholds of switch_to's model; empty: its "
        "calibrated values.",
    )
    yunet: YuNetSettings | None = Field(
        None, description="YuNet detector (face_detection_yunet_2023mar.onnx) for backend onnx."
    )
    sface: ModelFile | None = Field(None, description="SFace weights for recognizer sface.")
    onnx: OnnxRecognizerSettings | None = Field(
        None, description="Embedding model for recognizer onnx."
    )
    ncnn: NcnnRecognizerSettings | None = Field(
        None, description="Embedding model for recognizer ncnn (the default when set)."
    )
    dlib: DlibHogSettings = Field(default_factory=DlibHogSettings, description="dlib HOG detector.")
    camera: CameraSettings = Field(default_factory=CameraSettings, description="The camera.")
    quality: QualitySettings = Field(default_factory=QualitySettings, description="Quality gate.")
    liveness: LivenessSection = Field(default_factory=LivenessSection, description="Liveness.")
    verify_threshold: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="1:1 cosine threshold; empty: the calibrated value for the model (FAR 1e-4).",
    )
    identify_threshold: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="1:N cosine threshold; empty: the calibrated value for the model.",
    )
    identify_margin: float = Field(
        0.03, ge=0, le=1, description="Lead the best match needs over the runner-up in 1:N."
    )
    agreement: tuple[int, int] = Field(
        (2, 3), description="1:N names somebody when k of the last n good frames agree: [k, n]."
    )
    best_of: int = Field(3, ge=1, le=10, description="Good frames gathered before a 1:1 decision.")
    attempts: int = Field(
        2, ge=1, le=5, description="1:1 decisions tried before a mismatch is declared."
    )
    card_face_seconds: float = Field(
        5.0, gt=0, le=30, description="Time after a card tap for a matching face (T)."
    )
    identify_seconds: float = Field(3.0, gt=0, le=30, description="Time a 1:N attempt may take.")
    repeat_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Face-only: a holder still at the camera after passing is not admitted again "
        "until they leave or this long passes without them.",
    )
    max_gallery: int | None = Field(
        None,
        ge=1,
        description="Refuse face-only passage above this many templates; empty: the capacity "
        "calibrated for the model (1,000 for a model without one).",
    )
    store: Literal["float32", "float16"] = Field(
        "float32", description="In-memory template precision (float16 halves memory)."
    )
    still_retention_days: int = Field(
        30, ge=0, le=365, description="Days a security-event still is kept (0: keep none)."
    )

    @model_validator(mode="after")
    def _check(self) -> "FacesSection":
        if not self.enabled:
            return self
        if self.backend == "onnx" and self.yunet is None:
            raise ValueError("backend 'onnx' needs faces.yunet (path and sha256)")
        for kind in (self.recognizer, self.switch_to):
            if self.backend == "onnx" and kind is not None:
                self._check_section(kind)
        if self.switch_to is not None:
            if self.backend != "onnx":
                raise ValueError("faces.switch_to needs backend 'onnx' (YuNet detection)")
            if self.switch_to == self.recognizer_kind:
                raise ValueError("faces.switch_to names the recognizer already in use")
            if self.switch_thresholds and not all(-1 <= t <= 1 for t in self.switch_thresholds):
                raise ValueError("faces.switch_thresholds are cosines, -1 to 1")
            target = self.model_id_of(self.switch_to)
            if target not in CALIBRATED and self.switch_thresholds is None:
                raise ValueError(
                    "faces.switch_to: its model has no calibrated thresholds: set "
                    "faces.switch_thresholds = [verify, identify] from 'ykt faces calibrate'"
                )
        known = self.expected_model_id() in CALIBRATED
        if not known and (self.verify_threshold is None or self.identify_threshold is None):
            raise ValueError(
                "this recognizer has no calibrated thresholds: set faces.verify_threshold and "
                "faces.identify_threshold from 'ykt faces calibrate' (docs/faces.md)"
            )
        k, n = self.agreement
        if not 1 <= k <= n <= 10:
            raise ValueError("faces.agreement is [k, n] with 1 <= k <= n <= 10")
        return self

    def _check_section(self, kind: str) -> None:
        missing = {
            "sface": self.sface is None,
            "onnx": self.onnx is None,
            "ncnn": self.ncnn is None,
        }.get(kind, False)
        if missing:
            what = "param, bin and their sha256" if kind == "ncnn" else "path and sha256"
            raise ValueError(f"recognizer {kind!r} needs faces.{kind} ({what})")

    @property
    def recognizer_kind(self) -> Literal["ncnn", "dlib", "sface", "onnx"]:
        """The recognizer used: as configured, else ncnn when its files are set, else dlib."""
        if self.recognizer is not None:
            return self.recognizer
        return "ncnn" if self.ncnn is not None else "dlib"

    def expected_model_id(self) -> str | None:
        """The model id templates of the recognizer in use carry (when faces are set up)."""
        if self.backend == "dlib":
            return DLIB_MODEL_ID
        return self.model_id_of(self.recognizer_kind)

    def model_id_of(self, kind: RecognizerKind) -> str | None:
        """The model id a recognizer's templates carry, from its section alone (the drivers
        derive the same from the files they verified)."""
        if kind == "dlib":
            return DLIB_MODEL_ID
        if kind == "ncnn" and self.ncnn is not None:
            return self.ncnn.model_id()
        if kind == "sface" and self.sface is not None:
            return f"sface-{self.sface.short_id()}"
        if kind == "onnx" and self.onnx is not None:
            return f"onnx-{self.onnx.short_id()}"
        return None

    def encoder_settings(self, kind: RecognizerKind | None = None) -> EncoderSettings:
        """The encoder of the recognizer in use, or of ``kind`` (the one being switched to)."""
        kind = kind or self.recognizer_kind
        ncnn = self.ncnn if kind == "ncnn" else None
        return EncoderSettings(
            backend=self.backend,
            recognizer=kind,
            yunet=self.yunet,
            sface=self.sface,
            onnx=self.onnx,
            ncnn=ncnn,
            refine=None if ncnn is None else ncnn.refine(),
            dlib_hog=self.dlib,
        )

    def thresholds(self, model_id: str) -> tuple[float, float]:
        """``(verify, identify)`` for ``model_id``: configured, else calibrated."""
        calibrated = CALIBRATED.get(model_id)
        verify, identify = self.verify_threshold, self.identify_threshold
        if self.switch_to is not None and model_id == self.model_id_of(self.switch_to):
            verify, identify = self.switch_thresholds or (None, None)
        if verify is None or identify is None:
            if calibrated is None:
                raise ValueError(f"no calibrated thresholds for model {model_id!r}")
            verify = calibrated[0] if verify is None else verify
            identify = calibrated[1] if identify is None else identify
        return verify, identify

    def gallery_limit(self, model_id: str) -> int:
        """``max_gallery`` for ``model_id``: configured, else calibrated, else the default."""
        if self.max_gallery is not None:
            return self.max_gallery
        return CALIBRATED_GALLERY.get(model_id, DEFAULT_GALLERY)

    @property
    def still_retention(self) -> timedelta:
        return timedelta(days=self.still_retention_days)
