"""The project's exception tree.

Every error the terminal raises on purpose derives from :class:`TerminalError`, so the daemon can
tell "a known failure with a clear message" from a bug. Library exceptions (pyscard's, paho's,
sqlite3's) are translated into one of these at the boundary where they are caught.
"""


class TerminalError(Exception):
    """Root of every deliberate error raised by the terminal."""


class ConfigError(TerminalError):
    """Raised when a configuration file or value is invalid; the message names the key and why."""


class DriverError(TerminalError):
    """Raised when a hardware driver cannot talk to its device (unplugged, timeout, protocol)."""


class CardError(DriverError):
    """Raised when a presented card answers wrongly or leaves the field mid-exchange."""


class SyncError(TerminalError):
    """Raised when an HQ message is rejected or the MQTT link fails."""


class StoreError(TerminalError):
    """Raised when the local SQLite store is unusable (corrupt, unknown schema, full disk)."""
