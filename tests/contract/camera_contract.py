"""The Camera contract: what the face pipeline may rely on, whichever camera delivers the frames.

What every implementation of :class:`drivers.camera.interface.Camera` promises:

- ``latest`` gives a :class:`~drivers.camera.interface.CapturedFrame` whose image is
  height x width x 3 ``uint8`` (the configured size), whose ``seq`` is an ``int`` that grows with
  every new frame and whose ``at`` is :func:`time.monotonic` seconds, never decreasing;
- ``latest(after=seq)`` gives only a frame newer than ``seq``; a camera hands out the newest frame,
  never a backlog: a frame taken after a pause was captured after the pause;
- a frame handed out is never changed afterwards (the verifier keeps one as evidence);
- ``latest`` returns within its timeout: at once with ``timeout=0``, and ``None`` within the
  timeout from a camera that has nothing to deliver (unplugged, still connecting), whose health
  then says so;
- ``close`` ends it: ``latest`` raises :class:`~models.errors.DriverError`, ``health`` is not ok,
  and a second ``close`` is harmless.

Run on :class:`~drivers.camera.sim.SimCamera` (on demand and paced like a live camera) and on
:class:`~drivers.camera.opencv.OpenCVCamera` playing a video file written in the test, in
tests/contract/test_camera.py.
"""

import itertools
import time
from typing import Protocol

import numpy as np
import pytest

from drivers.camera.interface import Camera, CapturedFrame
from models.errors import DriverError

WAIT = 5.0  # for a frame from a streaming camera; returned well before on a healthy one
SLACK = 0.5  # what a return "within the timeout" may overrun on a busy two-CPU machine


class CameraHarness(Protocol):
    camera: Camera  # streaming: it has something to show
    width: int
    height: int

    def nothing_to_show(self) -> Camera:
        """Another camera of the same kind that delivers no frame (unplugged, no device)."""
        ...


def first_frame(camera: Camera) -> CapturedFrame:
    frame = camera.latest(timeout=WAIT)
    assert frame is not None, f"no frame within {WAIT} s: {camera.health()}"
    return frame


def newer(camera: Camera, after: CapturedFrame) -> CapturedFrame:
    frame = camera.latest(after=after.seq, timeout=WAIT)
    assert frame is not None, f"no frame after seq {after.seq} within {WAIT} s"
    return frame


class CameraContract:
    """Subclass as ``Test...`` with a ``harness`` fixture that yields a ready harness; the
    harness closes its cameras at teardown (closing twice is part of the contract)."""

    def test_frames_have_the_documented_shape_and_types(self, harness: CameraHarness) -> None:
        frame = first_frame(harness.camera)
        assert isinstance(frame, CapturedFrame)
        assert isinstance(frame.image, np.ndarray)
        assert frame.image.dtype == np.uint8
        assert frame.image.shape == (harness.height, harness.width, 3)
        assert isinstance(frame.seq, int)
        assert isinstance(frame.at, float)

    def test_seq_grows_and_at_is_monotonic_seconds(self, harness: CameraHarness) -> None:
        frames = [first_frame(harness.camera)]
        for _ in range(5):
            frames.append(newer(harness.camera, frames[-1]))
        now = time.monotonic()
        for before, after in itertools.pairwise(frames):
            assert after.seq > before.seq
            assert after.at >= before.at
        for frame in frames:
            # time.monotonic(), not the wall clock: a frame is seconds old at most.
            assert now - WAIT * 6 <= frame.at <= now

    def test_latest_after_a_seq_gives_only_a_newer_frame(self, harness: CameraHarness) -> None:
        first = first_frame(harness.camera)
        second = newer(harness.camera, first)
        assert second.seq > first.seq
        again = harness.camera.latest(after=second.seq, timeout=WAIT)
        assert again is not None and again.seq > second.seq

    def test_the_newest_frame_not_a_backlog(self, harness: CameraHarness) -> None:
        first_frame(harness.camera)
        time.sleep(0.5)  # frames the camera captures meanwhile are nobody's backlog
        resumed = time.monotonic()
        frame = harness.camera.latest(timeout=WAIT)
        assert frame is not None
        assert frame.at >= resumed - 0.25, f"a frame {resumed - frame.at:.2f} s old"

    def test_a_frame_handed_out_never_changes(self, harness: CameraHarness) -> None:
        frame = first_frame(harness.camera)
        kept = frame.image.copy()
        later = frame
        for _ in range(5):
            later = newer(harness.camera, later)
        assert np.array_equal(frame.image, kept)

    def test_no_timeout_means_no_wait(self, harness: CameraHarness) -> None:
        newest = first_frame(harness.camera)
        started = time.monotonic()
        harness.camera.latest(after=newest.seq + 1_000_000)  # a frame or None, but at once
        harness.camera.latest(after=newest.seq + 1_000_000, timeout=0)
        assert time.monotonic() - started < 0.2

    def test_nothing_to_show_is_none_within_the_timeout(self, harness: CameraHarness) -> None:
        camera = harness.nothing_to_show()
        started = time.monotonic()
        assert camera.latest(timeout=0) is None
        assert time.monotonic() - started < 0.2
        for timeout in (0.1, 0.4):
            started = time.monotonic()
            assert camera.latest(timeout=timeout) is None
            assert time.monotonic() - started < timeout + SLACK
        assert not camera.health().ok
        assert camera.health().state

    def test_a_streaming_camera_is_healthy(self, harness: CameraHarness) -> None:
        first_frame(harness.camera)
        health = harness.camera.health()
        assert health.ok, health
        assert health.state

    def test_closed_camera_raises_driver_error(self, harness: CameraHarness) -> None:
        first_frame(harness.camera)
        started = time.monotonic()
        harness.camera.close()
        assert time.monotonic() - started < 6  # OpenCV gives its reader thread 5 s
        with pytest.raises(DriverError):
            harness.camera.latest()
        with pytest.raises(DriverError):
            harness.camera.latest(after=-1, timeout=0.2)
        assert not harness.camera.health().ok
        harness.camera.close()  # twice: harmless
