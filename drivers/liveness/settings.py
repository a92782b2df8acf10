"""What the liveness check is configured with: the core of the config's ``[faces.liveness]``.

Apart from the runner (which imports OpenCV) so that the config can be read without it.
"""

from pathlib import Path

from pydantic import Field

from drivers.face.modelfile import ModelFile
from models.settings import Section


class MiniFASNetSettings(Section):
    """Presentation-attack detection (a photo or a screen held up to the camera)."""

    models: tuple[ModelFile, ...] = Field(
        (),
        description="MiniFASNet state dicts (.pth); file names say scale and network.",
    )
    threshold: float = Field(
        0.8, ge=0, le=1, description="Lowest fused 'real face' probability accepted."
    )
    cache_dir: Path = Field(
        Path("/var/cache/ykt-terminal/liveness"),
        description="Where the ONNX export of the liveness models is kept.",
    )
