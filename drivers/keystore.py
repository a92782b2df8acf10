"""Key stores: what a genuine card must answer to a challenge, without the terminal seeing K_card.

Both implementations compute ``AES-128-ECB(K_card, challenge)`` with the card key diversified
from a master key (NXP AN10922 style)::

    K_card = AES-CMAC(K_master[kid], 01 || card number (10 bytes BCD) || issuer id (8 bytes))

:class:`SoftwareKeyStore` holds the master keys in memory, loaded from a key file;
:class:`PsamKeyStore` asks a PSAM in a second reader slot, so the master key never leaves it.
Keys never appear in ``repr``, ``str``, exception text or log lines.
"""

import os
import stat
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from drivers.apdu import SW_OK, Response, Transport, describe_sw, exchange
from models.errors import ConfigError, DriverError

KEY_LENGTH = 16
CARD_NUMBER_LENGTH = 10
ISSUER_ID_LENGTH = 8
CHALLENGE_LENGTH = 16
DIVERSIFICATION_CONSTANT = 0x01  # AN10922: 0x01 selects an AES-128 key as the output
DEFAULT_SAM_AID = bytes.fromhex("F0594B5402")


class KeyStoreError(DriverError):
    """Raised when a key store cannot answer: unknown key id, PSAM missing, refusing or torn."""


class KeyStore(Protocol):
    """The terminal's side of the genuine-card check."""

    def expected_response(
        self, kid: int, card_number: bytes, issuer_id: bytes, challenge: bytes
    ) -> bytes:
        """The 16 bytes a genuine card with this number answers to INTERNAL AUTHENTICATE."""
        ...


# The PIN key (docs/privacy.md): what the key store answers for a "card" no issuer can make (0xFF
# is not a BCD digit), so it is no card's key and no card's answer, and only this key store (the
# PSAM, which never releases its master keys) can produce it. One call at start instead of one per
# holder: a PSAM takes tens of milliseconds an answer, and a snapshot brings 100,000 holders.
PIN_KEY_NUMBER = b"\xffYKT-PIN\x00\x00"
PIN_KEY_ISSUER = b"\xffPINKEY\x00"
PIN_KEY_CHALLENGE = b"ykt pin key v1\x00\x00"


def derive_pin_key(keystore: KeyStore, kid: int) -> bytes:
    """The 16-byte secret PIN hashes are sealed with, from master key ``kid``; never stored."""
    return keystore.expected_response(kid, PIN_KEY_NUMBER, PIN_KEY_ISSUER, PIN_KEY_CHALLENGE)


def _check_inputs(kid: int, card_number: bytes, issuer_id: bytes, challenge: bytes) -> None:
    if not 0 <= kid <= 0xFF:
        raise ValueError(f"key id {kid} is outside 0..255")
    if len(card_number) != CARD_NUMBER_LENGTH or len(issuer_id) != ISSUER_ID_LENGTH:
        raise ValueError("card number must be 10 bytes and issuer id 8 bytes")
    if len(challenge) != CHALLENGE_LENGTH:
        raise ValueError("challenge must be 16 bytes")


def diversification_input(card_number: bytes, issuer_id: bytes) -> bytes:
    """``01 || card number || issuer id``: the 19 bytes both key stores feed to AES-CMAC."""
    return bytes([DIVERSIFICATION_CONSTANT]) + card_number + issuer_id


def diversify(master_key: bytes, card_number: bytes, issuer_id: bytes) -> bytes:
    """K_card for one card (AN10922 AES-128; 19 input bytes so CMAC's own padding applies)."""
    mac = CMAC(algorithms.AES(master_key))
    mac.update(diversification_input(card_number, issuer_id))
    return mac.finalize()


def encrypt_block(key: bytes, block: bytes) -> bytes:
    """AES-128 of exactly one block: the card's INTERNAL AUTHENTICATE answer."""
    if len(block) != 16:
        raise ValueError("one AES block is 16 bytes")
    # ECB over a single fresh random block is a plain block cipher call: the profile's choice,
    # and without the multi-block pattern leak that makes ECB unsafe elsewhere.
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305
    return encryptor.update(block) + encryptor.finalize()


def parse_master_keys(table: Any, where: str) -> dict[int, bytes]:
    """Validate a ``{key id: 32 hex digits}`` table; errors name the key id, never the value."""
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{where}: [master_keys] must be a table of key id = hex key")
    keys: dict[int, bytes] = {}
    for name, value in table.items():
        try:
            kid = int(name)
        except ValueError:
            raise ConfigError(f"{where}: key id {name!r} is not a number") from None
        if not 0 <= kid <= 0xFF:
            raise ConfigError(f"{where}: key id {kid} is outside 0..255")
        try:
            key = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            key = b""
        if len(key) != KEY_LENGTH:
            raise ConfigError(f"{where}: key id {kid} must be 32 hex digits (AES-128)")
        keys[kid] = key
    return keys


def read_key_file(path: Path) -> dict[int, bytes]:
    """Load a key file after checking it is a regular file, ours, and closed to group/others.

    The file is opened first and checked through its descriptor, so it cannot be swapped between
    the check and the read; symlinks are refused for the same reason.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"key file {path}: cannot open ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"key file {path}: not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"key file {path}: mode {mode:04o} lets group or others in; it must be 0600 "
                f"(chmod 600 {path})"
            )
        if info.st_uid != os.geteuid():
            raise ConfigError(
                f"key file {path}: owned by uid {info.st_uid}, but the terminal runs as uid "
                f"{os.geteuid()}; the service user must own it"
            )
        raw = file.read()
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        # The decoder's message may quote the offending line, which can hold key material.
        raise ConfigError(f"key file {path}: not valid UTF-8 TOML") from None
    unknown = set(document) - {"master_keys"}
    if unknown:
        raise ConfigError(f"key file {path}: unknown key(s) {', '.join(sorted(unknown))}")
    return parse_master_keys(document.get("master_keys"), f"key file {path}")


class SoftwareKeyStore:
    """Master keys in process memory, from a key file (pilots, tests, sites without a PSAM).

    Key file format (TOML, mode 0600, owned by the service user)::

        # key id (0-255, the P2 of INTERNAL AUTHENTICATE) = AES-128 master key, 32 hex digits
        [master_keys]
        1 = "00112233445566778899AABBCCDDEEFF"
    """

    __slots__ = ("_keys", "_source")

    def __init__(self, master_keys: Mapping[int, bytes], source: str = "memory") -> None:
        for kid, key in master_keys.items():
            if not 0 <= kid <= 0xFF or len(key) != KEY_LENGTH:
                raise ConfigError(f"{source}: key id {kid} needs a 16-byte key and an id 0..255")
        if not master_keys:
            raise ConfigError(f"{source}: no master keys")
        self._keys = dict(master_keys)
        self._source = source

    @classmethod
    def from_file(cls, path: Path) -> "SoftwareKeyStore":
        """Load ``path``; raises :class:`~models.errors.ConfigError` naming the problem."""
        return cls(read_key_file(path), source=f"key file {path}")

    @property
    def key_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self._keys))

    def expected_response(
        self, kid: int, card_number: bytes, issuer_id: bytes, challenge: bytes
    ) -> bytes:
        _check_inputs(kid, card_number, issuer_id, challenge)
        master = self._keys.get(kid)
        if master is None:
            raise KeyStoreError(f"{self._source} has no master key with id {kid}")
        return encrypt_block(diversify(master, card_number, issuer_id), challenge)

    def __repr__(self) -> str:
        return f"SoftwareKeyStore(source={self._source!r}, key_ids={list(self.key_ids)})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling would copy the keys into whatever stores the pickle (caches, crash dumps).
        raise TypeError("a key store cannot be pickled")


class PsamKeyStore:
    """The genuine-card check done by a PSAM: the master key never leaves the SAM.

    Commands the terminal sends to the PSAM (PBOC-style, proprietary class ``80``):

    =================  ============================================  =========================
    step               command APDU                                  answer
    =================  ============================================  =========================
    SELECT SAM app     ``00 A4 04 00 Lc <SAM AID> 00``               FCI ``90 00`` (skipped
                       (default AID ``F0 59 4B 54 02``)              when no AID is set)
    DIVERSIFY          ``80 1A 00 <kid> 13 01 <card number:10>       ``90 00``; the SAM keeps
                       <issuer id:8>``                               K_card
    CIPHER             ``80 FA 00 00 10 <challenge:16> 10``          16 bytes ``90 00``:
                                                                     AES-128-ECB(K_card, rnd)
    GET RESPONSE       ``00 C0 00 00 xx`` after ``61 xx``            the pending bytes
    =================  ============================================  =========================

    DIVERSIFY's data is the 19-byte CMAC input ``01 || number || issuer id`` (Lc ``13``); P1 is
    ``00`` (AES-CMAC, AN10922) and P2 the master key id. K_card stays in the SAM until the next
    DIVERSIFY, a reset or power-off. Status words: ``90 00`` done; ``6A 88`` no key with that id;
    ``69 85`` CIPHER without a prior DIVERSIFY (or the SAM application not selected);
    ``69 82`` SAM locked; ``67 00`` wrong Lc; ``6A 80`` data does not start with ``01``;
    ``6A 86`` P1 or P2 wrong; ``6D 00``/``6E 00`` unknown instruction/class; ``61 xx`` more
    data (GET RESPONSE).

    One retry follows a failed attempt when the link dropped or the SAM answered ``69 85``, so a
    SAM that was reset (reader replugged, pcscd restarted) is selected again without losing a tap.
    """

    def __init__(self, transport: Transport, *, aid: bytes | None = DEFAULT_SAM_AID) -> None:
        if aid is not None and not 5 <= len(aid) <= 16:
            raise ConfigError(f"sam aid: {len(aid)} bytes, an AID has 5 to 16")
        self._transport = transport
        self._aid = aid
        self._selected = aid is None
        # One PSAM may serve two readers (entry and exit): DIVERSIFY and CIPHER must not interleave.
        self._lock = threading.Lock()

    def check(self) -> None:
        """Select the SAM application now, so a missing SAM shows in health before a tap."""
        with self._lock:
            self._selected = self._aid is None
            try:
                self._select()
            except _RetryableError as exc:
                raise KeyStoreError(f"PSAM: {exc}") from exc

    def expected_response(
        self, kid: int, card_number: bytes, issuer_id: bytes, challenge: bytes
    ) -> bytes:
        _check_inputs(kid, card_number, issuer_id, challenge)
        with self._lock:
            try:
                return self._compute(kid, card_number, issuer_id, challenge)
            except _RetryableError:
                self._selected = self._aid is None
            try:
                return self._compute(kid, card_number, issuer_id, challenge)
            except _RetryableError as exc:
                self._selected = self._aid is None
                raise KeyStoreError(f"PSAM: {exc}") from exc

    def _compute(self, kid: int, card_number: bytes, issuer_id: bytes, challenge: bytes) -> bytes:
        self._select()
        data = diversification_input(card_number, issuer_id)
        self._command(bytes([0x80, 0x1A, 0x00, kid, len(data)]) + data, "DIVERSIFY", kid)
        answer = self._command(
            bytes([0x80, 0xFA, 0x00, 0x00, 0x10]) + challenge + b"\x10", "CIPHER", kid
        )
        if len(answer.data) != CHALLENGE_LENGTH:
            raise KeyStoreError(f"PSAM CIPHER answered {len(answer.data)} bytes, expected 16")
        return answer.data

    def _select(self) -> None:
        if self._selected or self._aid is None:
            return
        apdu = bytes([0x00, 0xA4, 0x04, 0x00, len(self._aid)]) + self._aid + b"\x00"
        self._command(apdu, "SELECT", None)
        self._selected = True

    def _command(self, apdu: bytes, name: str, kid: int | None) -> Response:
        try:
            answer = exchange(self._transport, apdu)
        except DriverError as exc:
            raise _RetryableError(f"{name}: {exc}") from exc
        if answer.sw == SW_OK:
            return answer
        self._selected = self._aid is None
        if answer.sw == 0x6985:
            raise _RetryableError(f"{name}: {describe_sw(answer.sw)}")
        if answer.sw == 0x6A88:
            raise KeyStoreError(f"PSAM has no master key with id {kid}")
        if answer.sw == 0x6A82 and name == "SELECT":
            raise KeyStoreError("PSAM application not found (is the SAM in the right slot?)")
        raise KeyStoreError(f"PSAM {name}: {describe_sw(answer.sw)}")


class _RetryableError(KeyStoreError):
    """A PSAM failure worth one more attempt: the link dropped or the SAM lost its state."""
