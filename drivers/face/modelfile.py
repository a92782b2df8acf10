"""Model weights named by path and sha256: the project ships none, operators or HQ provide them.

A hash is required, not optional: a truncated download or a different model under the same file
name would otherwise produce templates that silently match nobody (or the wrong people).

A config section (``faces.yunet``, ``faces.sface``, each entry of ``faces.liveness.models``) and
what the drivers load from, in one class.
"""

import hashlib
from pathlib import Path

from pydantic import Field

from models.errors import DriverError
from models.settings import Section

SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"


class ModelFile(Section):
    """A weights file the operator or HQ provides; the project ships none."""

    path: Path = Field(description="Absolute path of the model file.")
    sha256: str = Field(
        pattern=SHA256_PATTERN,
        description="sha256 of the file (64 hex digits); the file is refused when it differs.",
    )

    def verified(self) -> Path:
        """The path, after checking the file exists and hashes to ``sha256``."""
        return verified(self.path, self.sha256)

    def short_id(self) -> str:
        """The first 12 hex digits of the hash: enough to tell weights apart in a model id."""
        return self.sha256.lower()[:12]


def verified(path: Path, sha256: str) -> Path:
    """``path``, after checking the file exists and hashes to ``sha256``."""
    if not path.is_file():
        raise DriverError(f"model file {path} does not exist")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if actual != sha256.lower():
        raise DriverError(
            f"model file {path} has sha256 {actual}, the configuration expects "
            f"{sha256.lower()}: wrong or damaged file"
        )
    return path
