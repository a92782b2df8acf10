"""The ``[faces]`` section of the terminal's configuration.

Safe defaults: faces are off until enabled; thresholds default to the values calibrated for the
recognizer's model (docs/faces.md) and a recognizer the project has not calibrated must be given
explicit thresholds; model files are named by path **and** sha256; face-only (1:N) passage
requires liveness unless the operator turns that off on purpose.
"""

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from drivers.camera.settings import CameraSettings
from drivers.face.backends import EncoderSettings
from drivers.face.dlib_backend import MODEL_ID as DLIB_MODEL_ID
from drivers.face.dlib_backend import DlibHogSettings
from drivers.face.modelfile import ModelFile
from drivers.face.ncnn_recognizer import (
    MOBILEFACENET_BIN_SHA256,
    MOBILEFACENET_PARAM_SHA256,
    NcnnRecognizerSettings,
    ncnn_model_id,
)
from drivers.face.quality import QualitySettings
from drivers.face.recognizers import OnnxRecognizerSettings
from drivers.face.yunet import RefineSettings, YuNetSettings
from models.settings import Section

_SHA256 = r"^[0-9a-fA-F]{64}$"

_MOBILEFACENET = ncnn_model_id(
    ModelFile(Path("mobilefacenet.param"), MOBILEFACENET_PARAM_SHA256),
    ModelFile(Path("mobilefacenet.bin"), MOBILEFACENET_BIN_SHA256),
)

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


class ModelFileConfig(Section):
    """A weights file the operator or HQ provides; the project ships none."""

    path: Path = Field(description="Absolute path of the model file.")
    sha256: str = Field(
        pattern=_SHA256,
        description="sha256 of the file (64 hex digits); the file is refused when it differs.",
    )

    def model_file(self) -> ModelFile:
        return ModelFile(self.path, self.sha256.lower())


class OnnxRecognizerConfig(ModelFileConfig):
    """An ArcFace-style ONNX embedding model run by OpenCV DNN."""

    input_size: int = Field(112, ge=32, le=512, description="Side of the aligned square crop.")
    mean: float = Field(127.5, description="Subtracted from every pixel value.")
    std: float = Field(127.5, gt=0, description="Pixel values are divided by this after.")
    rgb: bool = Field(True, description="Feed RGB (true) or BGR (false) channel order.")


class NcnnRecognizerConfig(Section):
    """An ArcFace-style embedding model in ncnn format (graph + weights), e.g. MobileFaceNet."""

    param: Path = Field(description="Absolute path of the .param file (the graph).")
    param_sha256: str = Field(pattern=_SHA256, description="sha256 of the .param file.")
    bin: Path = Field(description="Absolute path of the .bin file (the weights).")
    bin_sha256: str = Field(pattern=_SHA256, description="sha256 of the .bin file.")
    input_blob: str = Field("data", min_length=1, description="Name of the input blob.")
    output_blob: str = Field("fc1", min_length=1, description="Name of the embedding blob.")
    input_size: int = Field(112, ge=32, le=512, description="Side of the aligned square crop.")
    rgb: bool = Field(True, description="Feed RGB (true) or BGR (false) channel order.")
    mean: float = Field(
        0.0, description="Subtracted from every pixel (0: the graph normalises itself)."
    )
    std: float = Field(1.0, gt=0, description="Pixel values are divided by this after.")
    flip: bool = Field(
        False,
        description="Add the mirrored crop's embedding (twice the time; its own model id).",
    )
    threads: int = Field(1, ge=1, le=8, description="ncnn threads per embedding.")
    refine_below: float = Field(
        80.0,
        ge=0,
        description="Faces with eyes closer than this (pixels) are detected again, enlarged, "
        "for precise landmarks before alignment (0: never).",
    )

    def param_file(self) -> ModelFile:
        return ModelFile(self.param, self.param_sha256.lower())

    def bin_file(self) -> ModelFile:
        return ModelFile(self.bin, self.bin_sha256.lower())

    def model_id(self) -> str:
        base = ncnn_model_id(self.param_file(), self.bin_file())
        return f"{base}-flip" if self.flip else base

    def settings(self) -> NcnnRecognizerSettings:
        return NcnnRecognizerSettings(
            self.param_file(), self.bin_file(), self.input_blob, self.output_blob,
            self.input_size, self.rgb, self.mean, self.std, self.flip, self.threads,
        )  # fmt: skip


class DlibConfig(Section):
    """dlib's HOG detector (backend ``dlib``)."""

    max_width: int = Field(320, ge=80, description="Frames are shrunk to this width to detect.")
    upsample: int = Field(
        0, ge=0, le=2, description="Upsampling passes: each finds faces half as large, 4x slower."
    )


class QualityConfig(Section):
    """The quality gate every frame passes before its template is used."""

    min_eye_distance: float = Field(28.0, ge=8, description="Pixels between the eye centres.")
    min_sharpness: float = Field(
        25.0, ge=0, description="Variance of the Laplacian of the face at 112x112 grey."
    )
    max_roll_degrees: float = Field(25.0, gt=0, le=90, description="Head tilt limit.")
    max_yaw: float = Field(
        0.3, gt=0, le=1, description="Nose offset from the eye midpoint, in eye distances."
    )
    min_score: float = Field(0.6, ge=0, le=1, description="Lowest detector score accepted.")
    enrol_min_eye_distance: float = Field(
        36.0, ge=8, description="Stricter face size for enrolment photos."
    )
    enrol_min_sharpness: float = Field(
        40.0, ge=0, description="Stricter sharpness for enrolment photos."
    )

    def gate(self, *, enrolment: bool = False) -> QualitySettings:
        return QualitySettings(
            min_eye_distance=self.enrol_min_eye_distance if enrolment else self.min_eye_distance,
            min_sharpness=self.enrol_min_sharpness if enrolment else self.min_sharpness,
            max_roll_degrees=self.max_roll_degrees,
            max_yaw=self.max_yaw,
            min_score=self.min_score,
        )


class LivenessConfig(Section):
    """Presentation-attack detection (a photo or a screen held up to the camera)."""

    models: list[ModelFileConfig] = Field(
        default_factory=list,
        description="MiniFASNet state dicts (.pth); file names say scale and network.",
    )
    threshold: float = Field(
        0.8, ge=0, le=1, description="Lowest fused 'real face' probability accepted."
    )
    face_only: bool = Field(
        True, description="Require liveness for face-only (1:N) passage and face pay."
    )
    card_and_face: bool = Field(False, description="Require liveness for card + face too.")
    cache_dir: Path = Field(
        Path("/var/cache/ykt-terminal/liveness"),
        description="Where the ONNX export of the liveness models is kept.",
    )


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
    yunet: ModelFileConfig | None = Field(
        None, description="YuNet detector (face_detection_yunet_2023mar.onnx) for backend onnx."
    )
    sface: ModelFileConfig | None = Field(None, description="SFace weights for recognizer sface.")
    onnx: OnnxRecognizerConfig | None = Field(
        None, description="Embedding model for recognizer onnx."
    )
    ncnn: NcnnRecognizerConfig | None = Field(
        None, description="Embedding model for recognizer ncnn (the default when set)."
    )
    dlib: DlibConfig = Field(default_factory=DlibConfig, description="dlib HOG detector.")
    camera: CameraSettings = Field(default_factory=CameraSettings, description="The camera.")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="Quality gate.")
    liveness: LivenessConfig = Field(default_factory=LivenessConfig, description="Liveness.")
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
        if self.backend == "onnx" and self.recognizer == "sface" and self.sface is None:
            raise ValueError("recognizer 'sface' needs faces.sface (path and sha256)")
        if self.backend == "onnx" and self.recognizer == "onnx" and self.onnx is None:
            raise ValueError("recognizer 'onnx' needs faces.onnx (path and sha256)")
        if self.backend == "onnx" and self.recognizer == "ncnn" and self.ncnn is None:
            raise ValueError("recognizer 'ncnn' needs faces.ncnn (param, bin and their sha256)")
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

    @property
    def recognizer_kind(self) -> Literal["ncnn", "dlib", "sface", "onnx"]:
        """The recognizer used: as configured, else ncnn when its files are set, else dlib."""
        if self.recognizer is not None:
            return self.recognizer
        return "ncnn" if self.ncnn is not None else "dlib"

    def expected_model_id(self) -> str | None:
        """The model id templates will carry, when it follows from the configuration alone."""
        if self.backend == "dlib" or self.recognizer_kind == "dlib":
            return DLIB_MODEL_ID
        if self.recognizer_kind == "ncnn" and self.ncnn is not None:
            return self.ncnn.model_id()
        return None

    def encoder_settings(self) -> EncoderSettings:
        ncnn = self.ncnn if self.recognizer_kind == "ncnn" else None
        refine = None
        if ncnn is not None and ncnn.refine_below > 0:
            refine = RefineSettings(below=ncnn.refine_below)
        return EncoderSettings(
            backend=self.backend,
            recognizer=self.recognizer_kind,
            yunet=None if self.yunet is None else YuNetSettings(self.yunet.model_file()),
            sface=None if self.sface is None else self.sface.model_file(),
            onnx=None
            if self.onnx is None
            else OnnxRecognizerSettings(
                self.onnx.model_file(), self.onnx.input_size, self.onnx.mean, self.onnx.std,
                self.onnx.rgb,
            ),
            ncnn=None if ncnn is None else ncnn.settings(),
            refine=refine,
            dlib_hog=DlibHogSettings(self.dlib.max_width, self.dlib.upsample),
        )  # fmt: skip

    def thresholds(self, model_id: str) -> tuple[float, float]:
        """``(verify, identify)`` for ``model_id``: configured, else calibrated."""
        calibrated = CALIBRATED.get(model_id)
        verify = self.verify_threshold
        identify = self.identify_threshold
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
