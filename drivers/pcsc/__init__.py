"""PC/SC card reader (and PSAM slot): the only package that imports pyscard (``smartcard``).

``settings`` holds what the reader is configured with (the config's ``[reader]`` section),
``errors`` turns PC/SC return codes into the project's exception tree, ``slot`` runs the
blocking PC/SC calls of one reader slot on its own thread with deadlines, and ``reader`` is the
event loop that turns card insertions into :class:`~drivers.interfaces.ReaderEvent` values.
"""

from drivers.pcsc.reader import PcscCardReader, TapTiming
from drivers.pcsc.settings import (
    PcscSettings,
    PsamKeyStoreSettings,
    SoftwareKeyStoreSettings,
    reader_matches,
)
from drivers.pcsc.slot import list_readers

__all__ = [
    "PcscCardReader",
    "PcscSettings",
    "PsamKeyStoreSettings",
    "SoftwareKeyStoreSettings",
    "TapTiming",
    "list_readers",
    "reader_matches",
]
