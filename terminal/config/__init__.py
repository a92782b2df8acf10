"""The terminal's configuration: the schema (``model``, with the ``diag``, ``faces``,
``privacy`` and ``qr`` sections), reading it (``load``), the sync settings built from it
(``sync``) and the generated reference (``doc``).

The sections of the devices and of sync are defined where their code is (the drivers' settings,
:mod:`sync.settings`) on the one base model and secret type of :mod:`models.settings`; they are
exported here under the names the rest of the terminal uses.
"""

from drivers.pcsc.settings import PcscSettings, PsamKeyStoreSettings, SoftwareKeyStoreSettings
from drivers.turnstile.settings import SerialGateSettings
from models.errors import ConfigError
from sync.settings import SyncSection, signing_key_file
from terminal.config.diag import DiagSection
from terminal.config.faces import FacesSection
from terminal.config.load import describe_errors, load, parse
from terminal.config.model import (
    DEFAULT_OFFLINE_PER_TERMINAL,
    CardsSection,
    Config,
    DoorSection,
    LogSection,
    PcscReaderSection,
    PosSection,
    PsamKeyStoreSection,
    SerialGateSection,
    SimDisplaySection,
    SimGateSection,
    SimKeypadSection,
    SimReaderSection,
    SoftwareKeyStoreSection,
    StoreSection,
    TerminalSection,
)
from terminal.config.privacy import PrivacySection
from terminal.config.qr import QrSection
from terminal.config.sync import sync_settings

__all__ = [
    "DEFAULT_OFFLINE_PER_TERMINAL",
    "CardsSection",
    "Config",
    "ConfigError",
    "DiagSection",
    "DoorSection",
    "FacesSection",
    "LogSection",
    "PcscReaderSection",
    "PcscSettings",
    "PosSection",
    "PrivacySection",
    "PsamKeyStoreSection",
    "PsamKeyStoreSettings",
    "QrSection",
    "SerialGateSection",
    "SerialGateSettings",
    "SimDisplaySection",
    "SimGateSection",
    "SimKeypadSection",
    "SimReaderSection",
    "SoftwareKeyStoreSection",
    "SoftwareKeyStoreSettings",
    "StoreSection",
    "SyncSection",
    "TerminalSection",
    "describe_errors",
    "load",
    "parse",
    "signing_key_file",
    "sync_settings",
]
