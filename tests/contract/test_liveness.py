"""The LivenessCheck contract (tests/contract/liveness_contract.py) on AlwaysLive and on
MiniFASNet with the published weights from ../shared.

The MiniFASNet run needs the weights (../shared/models/minifasnet), torch for their ONNX export,
an LFW photo and YuNet to find its face; without any of them it is skipped, saying what is
missing, like the face tests in tests/faces.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from drivers.camera.images import fill
from drivers.camera.interface import Frame
from drivers.face.interface import Detection
from drivers.face.quality import primary
from drivers.face.yunet import YuNetDetector
from drivers.liveness.interface import AlwaysLive, LivenessCheck
from drivers.liveness.runner import MiniFASNetLiveness
from drivers.liveness.settings import MiniFASNetSettings
from tests.contract.liveness_contract import CENTRE, LivenessContract, LivenessHarness, detection
from tests.faces.conftest import PERSON_A, need_yunet, photo
from tests.faces.test_liveness import need_weights


class AlwaysLiveHarness:
    judges = False

    def __init__(self) -> None:
        self.check: LivenessCheck = AlwaysLive()

    def face(self) -> tuple[Frame, Detection]:
        frame = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
        return frame, detection(CENTRE)


class TestAlwaysLive(LivenessContract):
    @pytest.fixture
    def harness(self) -> LivenessHarness:
        return AlwaysLiveHarness()


class MiniFASNetHarness:
    judges = True

    def __init__(self, check: MiniFASNetLiveness, frame: Frame, face: Detection) -> None:
        self.check: LivenessCheck = check
        self._frame, self._face = frame, face

    def face(self) -> tuple[Frame, Detection]:
        return self._frame.copy(), self._face


@pytest.fixture(scope="module")
def minifasnet(tmp_path_factory: pytest.TempPathFactory) -> MiniFASNetLiveness:
    models = need_weights()
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: the ONNX export needs it (pip install torch==2.13.0)")
    cache: Path = tmp_path_factory.mktemp("liveness-cache")
    return MiniFASNetLiveness(MiniFASNetSettings(models=models, cache_dir=cache))


@pytest.fixture(scope="module")
def a_face() -> tuple[Frame, Detection]:
    # The photo covering a 640 x 480 frame, as a camera sees a person: no border around it.
    frame = fill(photo(PERSON_A[0]), 640, 480)
    face = primary(YuNetDetector(need_yunet()).detect(frame), frame)
    assert face is not None, "YuNet finds no face in the test photo"
    return frame, face


class TestMiniFASNetLiveness(LivenessContract):
    @pytest.fixture
    def harness(
        self, minifasnet: MiniFASNetLiveness, a_face: tuple[Frame, Detection]
    ) -> LivenessHarness:
        return MiniFASNetHarness(minifasnet, *a_face)
