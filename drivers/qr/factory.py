"""The QR reader a config names: an explicit driver -> constructor mapping.

The camera decoder (OpenCV) is imported only when chosen, so that ``drivers.qr`` and its
settings can be imported on a machine without OpenCV, like ``drivers.camera.settings``.
"""

from drivers.camera.interface import Camera
from drivers.qr.interface import QrReader
from drivers.qr.serial import SerialQrReader
from drivers.qr.settings import QrSettings
from drivers.qr.sim import SimQrReader
from models.errors import DriverError


def open_reader(settings: QrSettings, camera: Camera | None) -> QrReader:
    """The reader ``settings.driver`` names; ``camera`` is the terminal's, shared with the faces.

    ``DriverError`` for the camera driver without a camera (a terminal with faces off).
    """
    if settings.driver == "camera":
        if camera is None:
            raise DriverError(
                "the QR reader's driver is 'camera' but this terminal has no camera; "
                "configure the face camera, or a scanner module (driver 'serial')"
            )
        from drivers.qr.camera import CameraQrReader  # noqa: PLC0415 - OpenCV only when chosen

        return CameraQrReader(camera, settings)
    if settings.driver == "serial":
        return SerialQrReader(settings)
    return SimQrReader()
