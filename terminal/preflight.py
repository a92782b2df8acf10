"""The checks of secret files that need no hardware: run by ``ykt config check`` and by the
daemon before it builds anything, so a file the daemon would refuse is refused by the check too.

The config's own validation already knows that each secret reference names a readable file;
this reads the files the way the drivers will: the card key file's mode, owner and format, the
broker's certificates and key as the TLS layer loads them, the broker password, and the
terminal's signing key once it exists.
"""

import ssl
from collections.abc import Callable
from pathlib import Path

from drivers.keystore import read_key_file
from drivers.pcsc.settings import PcscSettings, SoftwareKeyStoreSettings
from drivers.secrets import resolve_secret
from models.errors import ConfigError, SyncError
from sync.keys import read_private_key
from sync.settings import SyncSection, signing_key_file
from terminal.config import Config


def problems(config: Config) -> list[str]:
    """What is wrong with the secret files ``config`` refers to; empty when nothing is."""
    found: list[str] = []
    for what, check in _checks(config):
        try:
            check()
        except (ConfigError, SyncError) as exc:
            found.append(str(exc))
        except (ValueError, OSError, ssl.SSLError) as exc:
            # Not the exception's text: a parser quoting a line of a key file quotes key material.
            found.append(f"{what}: {type(exc).__name__}")
    return found


def _checks(config: Config) -> list[tuple[str, Callable[[], object]]]:
    checks: list[tuple[str, Callable[[], object]]] = []
    reader = config.reader
    if isinstance(reader, PcscSettings) and isinstance(reader.key_store, SoftwareKeyStoreSettings):
        ref = reader.key_store.key_file
        checks.append(("reader.key_store.key_file", lambda: _card_keys(resolve_secret(ref))))
    if config.sync.enabled:
        checks.extend(_sync_checks(config.sync, config.terminal.state_dir))
    return checks


def _card_keys(path: Path) -> None:
    read_key_file(path)


def _sync_checks(section: SyncSection, state_dir: Path) -> list[tuple[str, Callable[[], object]]]:
    checks: list[tuple[str, Callable[[], object]]] = []
    if section.tls_ca is not None:
        ca, cert, key = section.tls_ca, section.tls_cert, section.tls_key
        checks.append(("sync.tls_ca", lambda: _tls(ca, cert, key)))
    if section.password is not None:
        password = section.password
        checks.append(("sync.password", lambda: _password(password)))
    own_key = signing_key_file(section, state_dir)
    if own_key.exists():
        checks.append(("sync.key_file", lambda: read_private_key(own_key)))
    return checks


def _tls(ca: str, cert: str | None, key: str | None) -> None:
    """Load them as the MQTT link's ``tls_set`` will at start."""
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=str(resolve_secret(ca)))
    except ssl.SSLError:
        raise ConfigError("sync.tls_ca: not a PEM CA certificate") from None
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(str(resolve_secret(cert)), str(resolve_secret(key)))
        except ssl.SSLError:
            raise ConfigError(
                "sync.tls_cert/tls_key: not a PEM certificate and its private key"
            ) from None


def _password(ref: str) -> None:
    if not resolve_secret(ref).read_text(encoding="utf-8").strip():
        raise ConfigError("sync.password: the password file is empty")
