"""MiniFASNet liveness: the written network against the published weights, the ONNX export, and
its answers on real faces and on simulated photo attacks.

Samples, and why they are fair:
- live: lfw-dev photos as taken (news photographs of people in real scenes). The model's wide
  crops (2.7x and 4x the face box) then see only the scene around a real face.
- attack: the same faces shown as a photo held up to a camera: the picture, shrunk, inside a
  dark phone bezel in a room. The medium's edge inside the wide crop is the cue the published
  model was trained to catch. These attacks are simulated, not recaptured; an evaluation on a
  real presentation-attack data set is still to be done (docs/faces.md).
"""

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.face.modelfile import ModelFile
from drivers.face.quality import primary
from drivers.face.yunet import YuNetDetector
from drivers.liveness.runner import MiniFASNetLiveness, crop_box, scale_from_name
from drivers.liveness.settings import MiniFASNetSettings
from models.errors import DriverError
from tests.faces.conftest import MINIFASNET, need_lfw, need_yunet, photo

WEIGHTS = ("2.7_80x80_MiniFASNetV2.pth", "4_0_0_80x80_MiniFASNetV1SE.pth")
SHA256 = {
    WEIGHTS[0]: "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
    WEIGHTS[1]: "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
}


def need_weights() -> tuple[ModelFile, ...]:
    if not all((MINIFASNET / name).is_file() for name in WEIGHTS):
        pytest.skip(f"MiniFASNet weights not found at {MINIFASNET} (shared test data)")
    return tuple(ModelFile(path=MINIFASNET / name, sha256=SHA256[name]) for name in WEIGHTS)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("liveness-cache")


@pytest.fixture(scope="module")
def liveness(export_dir: Path) -> MiniFASNetLiveness:
    models = need_weights()
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: the ONNX export needs it (pip install torch==2.13.0)")
    return MiniFASNetLiveness(MiniFASNetSettings(models=models, cache_dir=export_dir))


def test_the_written_network_takes_every_published_tensor() -> None:
    need_weights()
    minifasnet = pytest.importorskip("drivers.liveness.minifasnet", reason="needs torch")
    for name, tensors, values in ((WEIGHTS[0], 284, 444_928), (WEIGHTS[1], 314, 444_554)):
        state = minifasnet.load_state(MINIFASNET / name)
        kept = [k for k in state if not k.endswith("num_batches_tracked")]
        assert (len(kept), sum(state[k].numel() for k in kept)) == (tensors, values)
        minifasnet.load(MINIFASNET / name)  # strict: a missing or extra tensor raises


def test_the_onnx_export_computes_what_torch_computes(export_dir: Path) -> None:
    need_weights()
    minifasnet = pytest.importorskip("drivers.liveness.minifasnet", reason="needs torch")
    torch = pytest.importorskip("torch")
    path = minifasnet.export(MINIFASNET / WEIGHTS[1], export_dir)
    assert minifasnet.export(MINIFASNET / WEIGHTS[1], export_dir) == path  # cached by hash
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 80, 80)).astype(np.float32)
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setInput(x)
    with torch.no_grad():
        expected = minifasnet.load(MINIFASNET / WEIGHTS[1])(torch.from_numpy(x)).numpy()
    assert np.allclose(net.forward(), expected, atol=1e-4)


def test_crop_scales_and_names() -> None:
    assert scale_from_name(WEIGHTS[0]) == 2.7 and scale_from_name(WEIGHTS[1]) == 4.0
    with pytest.raises(DriverError):
        scale_from_name("model.pth")
    assert crop_box((100, 100, 50, 50), 2.0, 640, 480) == (75, 75, 175, 175)
    left, top, right, bottom = crop_box((0, 0, 100, 100), 4.0, 640, 480)  # shifted, shrunk
    assert left >= 0 and top >= 0 and right < 640 and bottom < 480


def test_a_missing_export_without_torch_says_how_to_make_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = need_weights()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "torch" else real(n, *a)
    )
    with pytest.raises(DriverError, match=r"python -m drivers\.liveness\.minifasnet"):
        MiniFASNetLiveness(MiniFASNetSettings(models=models, cache_dir=tmp_path))


def _photos(count: int) -> list[str]:
    root = need_lfw()
    return sorted(p.relative_to(root).as_posix() for p in root.glob("*/*_0001.jpg"))[:count]


def _held_up(image: np.ndarray) -> np.ndarray:
    frame = np.full((480, 640, 3), (90, 100, 110), np.uint8)
    cv2.rectangle(frame, (250, 150), (390, 330), (15, 15, 15), -1)
    frame[185:305, 260:380] = cv2.resize(image, (120, 120))
    return frame


def test_real_faces_pass_and_photos_held_up_fail(liveness: MiniFASNetLiveness) -> None:
    detector = YuNetDetector(need_yunet())
    live, attacks_passed, judged = 0, 0, 0
    for relative in _photos(20):
        image = photo(relative)
        face = primary(detector.detect(image), image)
        shown = _held_up(image)
        held = primary(detector.detect(shown), shown)
        if face is None or held is None:
            continue
        judged += 1
        live += liveness.check(image, face).live
        attacks_passed += liveness.check(shown, held).live
    assert judged >= 15
    assert live >= 0.75 * judged, (live, judged)
    assert attacks_passed <= 0.1 * judged, (attacks_passed, judged)
