"""The pluggable ONNX recognizers, on a tiny stand-in model built here (no real weights ship).

The stand-in pools the aligned crop to a 3-vector per colour channel: enough to check loading by
path + sha256, alignment, preprocessing, the model id and the output contract, not accuracy.
"""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from drivers.face.interface import Detection, Landmarks
from drivers.face.modelfile import ModelFile
from drivers.face.recognizers import OnnxRecognizer, SFaceRecognizer
from drivers.face.settings import OnnxRecognizerSettings
from models.errors import DriverError
from tests.faces.conftest import PERSON_A, photo

onnx = pytest.importorskip("onnx", reason="building the stand-in model needs the onnx package")


def tiny_model(path: Path) -> ModelFile:
    helper = onnx.helper
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["fc1"]),
        ],
        "stand_in",
        [helper.make_tensor_value_info("data", onnx.TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", onnx.TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    path.write_bytes(model.SerializeToString())
    return OnnxRecognizerSettings(path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


FACE = Detection(
    (80, 60, 100, 130),
    Landmarks((105, 115), (150, 115), (127, 138), (108, 160), (146, 160)),
    0.9,
)


def test_generic_onnx_recognizer_contract(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "tiny.onnx")
    recognizer = OnnxRecognizer(model)
    assert recognizer.dim == 3
    assert recognizer.model_id == f"onnx-{model.sha256[:12]}"
    template = recognizer.embed(photo(PERSON_A[0]), FACE)
    assert template.model == recognizer.model_id
    assert np.isclose(np.linalg.norm(template.vector), 1.0)
    with pytest.raises(DriverError, match="sha256"):
        OnnxRecognizer(model.model_copy(update={"sha256": "f" * 64}))


def test_sface_recognizer_loads_by_hash_and_tags_its_templates(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "sface-stand-in.onnx")
    recognizer = SFaceRecognizer(model)
    assert recognizer.model_id == f"sface-{model.sha256[:12]}"
    assert recognizer.dim == 3
    template = recognizer.embed(photo(PERSON_A[0]), FACE)
    assert template.model == recognizer.model_id and template.dim == 3
