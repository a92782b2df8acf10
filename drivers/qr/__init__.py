"""QR codes shown to the terminal: the camera decoder, a serial scanner, a simulated reader."""

from drivers.qr.factory import open_reader
from drivers.qr.interface import QrEvent, QrPresented, QrReader, QrRemoved
from drivers.qr.settings import QrSettings

__all__ = ["QrEvent", "QrPresented", "QrReader", "QrRemoved", "QrSettings", "open_reader"]
