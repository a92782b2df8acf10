"""Cameras: the :class:`Camera` interface, OpenCV capture, and a simulated camera.

``interface`` has no OpenCV import; ``opencv`` captures from a V4L2 device, a file or a stream URL
in its own thread; ``sim`` plays image files or a video for the demo and tests.
"""

from drivers.camera.interface import Camera, CapturedFrame, Frame

__all__ = ["Camera", "CapturedFrame", "Frame"]
