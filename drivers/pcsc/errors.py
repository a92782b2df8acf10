"""PC/SC return codes translated into the project's exception tree, by what they mean for us."""

from smartcard import scard  # type: ignore[import-untyped]

from drivers.apdu import CardTornError
from models.errors import CardError, DriverError


class ServiceDownError(DriverError):
    """Raised when pcscd is not running or was restarted under us."""

    state = "pcscd_unavailable"


class ReaderGoneError(DriverError):
    """Raised when the configured reader is not (or no longer) connected."""

    state = "reader_missing"


class UnsupportedCardError(CardError):
    """Raised when the card in the field speaks neither T=0 nor T=1 (e.g. a memory card)."""


class OverrunError(DriverError):
    """Raised when a PC/SC call did not return before its deadline."""


# Anything not listed here is a plain DriverError: the reader is restarted with backoff.
_ERRORS: dict[int, type[DriverError]] = {
    getattr(scard, f"SCARD_{name}"): kind
    for kind, names in (
        (CardTornError, "W_REMOVED_CARD E_NO_SMARTCARD W_RESET_CARD W_UNPOWERED_CARD"),
        (CardTornError, "W_UNRESPONSIVE_CARD E_NOT_TRANSACTED"),
        (UnsupportedCardError, "E_PROTO_MISMATCH W_UNSUPPORTED_CARD E_CARD_UNSUPPORTED"),
        (CardError, "E_SHARING_VIOLATION"),
        (ServiceDownError, "E_NO_SERVICE E_SERVICE_STOPPED E_INVALID_HANDLE F_COMM_ERROR"),
        (ReaderGoneError, "E_NO_READERS_AVAILABLE E_UNKNOWN_READER E_READER_UNAVAILABLE"),
    )
    for name in names.split()
}


def translate(hresult: int, what: str) -> DriverError:
    """The project's exception for a failed PC/SC call; the text names the call and the code."""
    text = f"{what}: {scard.SCardGetErrorMessage(hresult)} (0x{hresult & 0xFFFFFFFF:08X})"
    return _ERRORS.get(hresult, DriverError)(text)
