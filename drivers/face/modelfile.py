"""Model weights named by path and sha256: the project ships none, operators or HQ provide them.

A hash is required, not optional: a truncated download or a different model under the same file
name would otherwise produce templates that silently match nobody (or the wrong people).
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from models.errors import DriverError


@dataclass(frozen=True, slots=True)
class ModelFile:
    path: Path
    sha256: str

    def verified(self) -> Path:
        """The path, after checking the file exists and hashes to ``sha256``."""
        if not self.path.is_file():
            raise DriverError(f"model file {self.path} does not exist")
        digest = hashlib.sha256()
        with self.path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        actual = digest.hexdigest()
        if actual != self.sha256.lower():
            raise DriverError(
                f"model file {self.path} has sha256 {actual}, the configuration expects "
                f"{self.sha256.lower()}: wrong or damaged file"
            )
        return self.path

    def short_id(self) -> str:
        """The first 12 hex digits of the hash: enough to tell weights apart in a model id."""
        return self.sha256.lower()[:12]
