"""What the face drivers are configured with: the config's ``[faces.*]`` sections themselves.

Apart from the drivers (which import OpenCV, dlib or ncnn) so that the config can be read,
checked and documented without them. Defaults come from the lfw-dev measurements in
docs/faces.md and from the published settings of each model.
"""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from drivers.face.modelfile import SHA256_PATTERN, ModelFile, verified
from models.settings import Section

# MobileFaceNet trained with the ArcFace loss, as published for ncnn (BSD-3 repository; InsightFace
# training data for non-commercial research). The project develops and tests with it and ships
# neither file: a site supplies a model licensed for its use (docs/faces.md).
MOBILEFACENET_PARAM_SHA256 = "dfea20c1a5c2adef2126296f42771ecf33bfa9a50cbe0f7ca8864c7bd1a4bbeb"
MOBILEFACENET_BIN_SHA256 = "9638dcfee63785b87a5ab0b0ed9f9dffe93e4b3718e5ea1b537dd5243a661b87"

# dlib's ResNet: one fixed model, so one fixed id.
DLIB_MODEL_ID = "dlib-resnet-v1"


class YuNetSettings(ModelFile):
    """The YuNet detector (face_detection_yunet_2023mar.onnx) for backend onnx."""

    score_threshold: float = Field(0.6, ge=0, le=1, description="Lowest face score kept.")
    nms_threshold: float = Field(
        0.3, gt=0, le=1, description="Overlap above which two boxes are one face."
    )
    top_k: int = Field(50, ge=1, le=500, description="Faces kept per frame, best first.")
    max_width: int = Field(
        640, ge=80, le=4096, description="Frames are shrunk to this width to detect."
    )


class RefineSettings(Section):
    """When a face's eyes are less than ``below`` pixels apart, YuNet runs again on the face
    region enlarged to ``size`` x ``size`` (``context`` face boxes wide).

    YuNet's landmarks are coarse on small faces, and a five-point ArcFace alignment is only as
    good as they are: on lfw-dev (eyes about 45 px apart) this second look raised the ncnn
    recognizer's TAR at FAR 1e-5 by about a point (docs/faces.md). A face already that large is
    left as it is, so a person close to the camera costs nothing extra.
    """

    below: float = Field(80.0, ge=0, description="Eye distance below which faces are refined.")
    size: int = Field(400, ge=64, le=1024, description="Side of the enlarged region.")
    context: float = Field(2.5, gt=1, le=5, description="Region width in face boxes.")


class OnnxRecognizerSettings(ModelFile):
    """An ArcFace-style ONNX embedding model run by OpenCV DNN: aligned ``input_size`` square
    crop in, one vector out; ``(pixel - mean) / std`` per channel. The defaults are those of
    InsightFace's ArcFace/MobileFaceNet exports."""

    input_size: int = Field(112, ge=32, le=512, description="Side of the aligned square crop.")
    mean: float = Field(127.5, description="Subtracted from every pixel value.")
    std: float = Field(127.5, gt=0, description="Pixel values are divided by this after.")
    rgb: bool = Field(True, description="Feed RGB (true) or BGR (false) channel order.")


def ncnn_model_id(param_sha256: str, bin_sha256: str) -> str:
    """``ncnn-`` and 12 hex digits of a hash over both files' hashes (graph and weights)."""
    joined = f"{param_sha256.lower()}:{bin_sha256.lower()}".encode()
    return f"ncnn-{hashlib.sha256(joined).hexdigest()[:12]}"


class NcnnRecognizerSettings(Section):
    """An ArcFace-style embedding model in ncnn format (graph + weights), e.g. MobileFaceNet.

    The defaults fit MobileFaceNet-ArcFace as published for ncnn: input blob ``data``, output
    ``fc1``, RGB, raw 0-255 pixels (its graph normalises them itself, so ``mean`` 0, ``std`` 1).
    """

    param: Path = Field(description="Absolute path of the .param file (the graph).")
    param_sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of the .param file.")
    bin: Path = Field(description="Absolute path of the .bin file (the weights).")
    bin_sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of the .bin file.")
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

    def verified(self) -> tuple[Path, Path]:
        """Both files, after checking they exist and hash as configured."""
        return verified(self.param, self.param_sha256), verified(self.bin, self.bin_sha256)

    def model_id(self) -> str:
        """The id templates carry: the files' hashes, and whether the mirror is added."""
        base = ncnn_model_id(self.param_sha256, self.bin_sha256)
        return f"{base}-flip" if self.flip else base

    def refine(self) -> RefineSettings | None:
        return RefineSettings(below=self.refine_below) if self.refine_below > 0 else None


class DlibHogSettings(Section):
    """dlib's HOG detector (backend ``dlib``). HOG finds faces from about 80 px wide; frames are
    shrunk to ``max_width`` first (speed) and upsampled inside dlib (reach)."""

    max_width: int = Field(320, ge=80, description="Frames are shrunk to this width to detect.")
    upsample: int = Field(
        0, ge=0, le=2, description="Upsampling passes: each finds faces half as large, 4x slower."
    )
    adjust_threshold: float = Field(
        0.0, ge=-1, le=1, description="Added to HOG's detection threshold (negative: more faces)."
    )


class QualitySettings(Section):
    """The quality gate every frame passes before its template is used. Defaults from the
    lfw-dev photos as YuNet sees them (docs/faces.md): eye distance 1st percentile 32 px;
    sharpness 1st/5th percentile 19/38; |yaw| 95th/99th percentile 0.27/0.39; pitch 1st-99th
    percentile 0.47-0.67."""

    min_eye_distance: float = Field(28.0, ge=8, description="Pixels between the eye centres.")
    min_sharpness: float = Field(
        25.0, ge=0, description="Variance of the Laplacian of the face at 112x112 grey."
    )
    max_roll_degrees: float = Field(25.0, gt=0, le=90, description="Head tilt limit.")
    max_yaw: float = Field(
        0.3, gt=0, le=1, description="Nose offset from the eye midpoint, in eye distances."
    )
    pitch_range: tuple[float, float] = Field(
        (0.25, 0.75),
        description="Where the nose may sit between the eye line (0) and the mouth (1).",
    )
    min_score: float = Field(0.6, ge=0, le=1, description="Lowest detector score accepted.")
    enrol_min_eye_distance: float = Field(
        36.0, ge=8, description="Stricter face size for enrolment photos."
    )
    enrol_min_sharpness: float = Field(
        40.0, ge=0, description="Stricter sharpness for enrolment photos."
    )

    @model_validator(mode="after")
    def _check_pitch(self) -> "QualitySettings":
        low, high = self.pitch_range
        if not 0 <= low < high <= 1:
            raise ValueError("pitch_range is [low, high] with 0 <= low < high <= 1")
        return self

    def for_enrolment(self) -> "QualitySettings":
        """The gate enrolment photos pass: the same, with the stricter size and sharpness."""
        return self.model_copy(
            update={
                "min_eye_distance": self.enrol_min_eye_distance,
                "min_sharpness": self.enrol_min_sharpness,
            }
        )


Backend = Literal["onnx", "dlib"]
RecognizerKind = Literal["ncnn", "sface", "onnx", "dlib"]


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """Which detector and recognizer an encoder is built from, each with its own section."""

    backend: Backend = "onnx"
    recognizer: RecognizerKind = "dlib"
    yunet: YuNetSettings | None = None
    sface: ModelFile | None = None
    onnx: OnnxRecognizerSettings | None = None
    ncnn: NcnnRecognizerSettings | None = None
    # Landmark refinement of small faces before alignment; None: none.
    refine: RefineSettings | None = None
    dlib_hog: DlibHogSettings = field(default_factory=DlibHogSettings)
