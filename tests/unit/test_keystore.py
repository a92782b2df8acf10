"""Key stores: diversification vectors, key file rules, secrecy, and the PSAM commands."""

import logging
import os
import pickle
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from devtools.cardemu.sam import EmulatedSam
from drivers.apdu import CardTornError
from drivers.keystore import (
    KeyStoreError,
    PsamKeyStore,
    SoftwareKeyStore,
    diversify,
    encrypt_block,
    read_key_file,
)
from models.errors import ConfigError
from tests.factories import InProcessSam

MASTER_HEX = "2B7E151628AED2A6ABF7158809CF4F3C"
MASTER = bytes.fromhex(MASTER_HEX)
NUMBER = bytes.fromhex("31000000000000012345")
ISSUER = bytes.fromhex("5943484E00000001")
CHALLENGE = bytes(range(0xA0, 0xB0))


# -- an independent AES-CMAC (RFC 4493), using AES only as a block cipher ------------------


def _aes(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def _double(block: bytes) -> bytes:
    value = int.from_bytes(block, "big") << 1
    if value >> 128:
        value = (value & ((1 << 128) - 1)) ^ 0x87
    return value.to_bytes(16, "big")


def reference_cmac(key: bytes, message: bytes) -> bytes:
    k1 = _double(_aes(key, bytes(16)))
    k2 = _double(k1)
    blocks = [message[i : i + 16] for i in range(0, len(message), 16)] or [b""]
    last = blocks[-1]
    if len(last) == 16:
        last = bytes(a ^ b for a, b in zip(last, k1, strict=True))
    else:
        padded = last + b"\x80" + bytes(15 - len(last))
        last = bytes(a ^ b for a, b in zip(padded, k2, strict=True))
    state = bytes(16)
    for block in [*blocks[:-1], last]:
        state = _aes(key, bytes(a ^ b for a, b in zip(state, block, strict=True)))
    return state


@pytest.mark.parametrize(
    ("message", "mac"),
    [  # RFC 4493 section 4, key 2B7E1516...
        ("", "BB1D6929E95937287FA37D129B756746"),
        ("6BC1BEE22E409F96E93D7E117393172A", "070A16B46B4D4144F79BDD9DD04A287C"),
        (
            "6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E5130C81C46A35CE411",
            "DFA66747DE9AE63030CA32611497C827",
        ),
    ],
)
def test_reference_cmac_matches_rfc_4493(message: str, mac: str) -> None:
    assert reference_cmac(MASTER, bytes.fromhex(message)).hex().upper() == mac


def test_an10922_aes128_vector() -> None:
    # NXP AN10922 section 2.2.1: master key 00112233..., M = UID || AID || system identifier.
    key = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
    message = bytes.fromhex("01" + "04782E21801D803042F54E585020416275")
    assert reference_cmac(key, message).hex().upper() == "A8DD63A3B89D54B37CA802473FDA9175"


def test_diversification_matches_the_independent_computation() -> None:
    card_key = diversify(MASTER, NUMBER, ISSUER)

    assert card_key == reference_cmac(MASTER, b"\x01" + NUMBER + ISSUER)
    assert card_key.hex().upper() == "50C3BDAB779F394BC7A56DDB567FE4F3"


def test_expected_response_is_aes_of_the_challenge_under_the_card_key() -> None:
    store = SoftwareKeyStore({1: MASTER})

    response = store.expected_response(1, NUMBER, ISSUER, CHALLENGE)

    assert response == _aes(reference_cmac(MASTER, b"\x01" + NUMBER + ISSUER), CHALLENGE)
    assert response == encrypt_block(diversify(MASTER, NUMBER, ISSUER), CHALLENGE)


def test_unknown_key_id_is_a_key_store_error() -> None:
    store = SoftwareKeyStore({1: MASTER})

    with pytest.raises(KeyStoreError, match="no master key with id 2") as caught:
        store.expected_response(2, NUMBER, ISSUER, CHALLENGE)
    assert MASTER_HEX not in str(caught.value).upper()


# -- the key file ---------------------------------------------------------------------------


def write_key_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


GOOD_FILE = f'[master_keys]\n1 = "{MASTER_HEX}"\n7 = "{"00" * 16}"\n'


def test_key_file_is_loaded(tmp_path: Path) -> None:
    store = SoftwareKeyStore.from_file(write_key_file(tmp_path, GOOD_FILE))

    assert store.key_ids == (1, 7)
    assert store.expected_response(1, NUMBER, ISSUER, CHALLENGE) == SoftwareKeyStore(
        {1: MASTER}
    ).expected_response(1, NUMBER, ISSUER, CHALLENGE)


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o660, 0o604, 0o602, 0o666, 0o610])
def test_key_file_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_key_file(tmp_path, GOOD_FILE, mode)

    with pytest.raises(ConfigError, match="must be 0600") as caught:
        SoftwareKeyStore.from_file(path)
    assert f"{mode:04o}" in str(caught.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_key_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = write_key_file(tmp_path, GOOD_FILE)
    os.chown(path, 54321, -1)

    with pytest.raises(ConfigError, match="owned by uid 54321"):
        SoftwareKeyStore.from_file(path)


def test_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    target = write_key_file(tmp_path, GOOD_FILE)
    link = tmp_path / "link.toml"
    link.symlink_to(target)

    with pytest.raises(ConfigError, match="cannot open"):
        read_key_file(link)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot open"):
        read_key_file(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'[master_keys]\n1 = "{MASTER_HEX[:-2]}"\n', "key id 1 must be 32 hex digits"),
        (f'[master_keys]\n1 = "{MASTER_HEX[:-1]}Z"\n', "key id 1 must be 32 hex digits"),
        (f'[master_keys]\n256 = "{MASTER_HEX}"\n', "key id 256 is outside"),
        (f'[master_keys]\nmain = "{MASTER_HEX}"\n', "is not a number"),
        (f'[master_keys]\n1 = 5\nkey = "{MASTER_HEX}"\n', "key id 1 must be"),
        (f'master_key = "{MASTER_HEX}"\n', "unknown key(s) master_key"),
        ("[master_keys]\n", "must be a table"),
        (f'[master_keys\n1 = "{MASTER_HEX}"\n', "not valid UTF-8 TOML"),
    ],
)
def test_bad_key_files_name_the_problem_not_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write_key_file(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        SoftwareKeyStore.from_file(path)
    assert message in str(caught.value)
    assert MASTER_HEX[:16] not in str(caught.value).upper()
    # A chained library error could quote the file's content; none may be shown.
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_keys_never_show(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = SoftwareKeyStore.from_file(write_key_file(tmp_path, GOOD_FILE))
    store.expected_response(1, NUMBER, ISSUER, CHALLENGE)

    shown = f"{store!r} {store!s} {caplog.text}".upper()
    assert MASTER_HEX not in shown
    assert MASTER_HEX[:8] not in shown
    assert "1, 7" in repr(store)
    with pytest.raises(TypeError):
        pickle.dumps(store)


# -- the PSAM ------------------------------------------------------------------------------

SELECT_SAM = "00A4040005F0594B540200"
DIVERSIFY = "801A000113" + "01" + NUMBER.hex().upper() + ISSUER.hex().upper()
CIPHER = "80FA000010" + CHALLENGE.hex().upper() + "10"


def sam_answer() -> str:
    return SoftwareKeyStore({1: MASTER}).expected_response(1, NUMBER, ISSUER, CHALLENGE).hex()


class ScriptedSam:
    """A transport that plays the PSAM: each step is (expected APDU, answer or exception)."""

    def __init__(self, *steps: tuple[str, str | Exception]) -> None:
        self.steps = list(steps)

    def transmit(self, apdu: bytes) -> bytes:
        assert self.steps, f"unexpected APDU {apdu.hex().upper()}"
        expected, answer = self.steps.pop(0)
        assert apdu.hex().upper() == expected
        if isinstance(answer, Exception):
            raise answer
        return bytes.fromhex(answer)


def test_psam_commands_byte_exact() -> None:
    sam = ScriptedSam(
        (SELECT_SAM, "6F0784 05F0594B5402 9000".replace(" ", "")),  # SELECT SAM application
        (DIVERSIFY, "9000"),  # DIVERSIFY with key id 1
        (CIPHER, sam_answer() + "9000"),  # CIPHER the challenge
        (DIVERSIFY, "9000"),  # next card: DIVERSIFY (no second SELECT)
        (CIPHER, sam_answer() + "9000"),  # CIPHER
    )
    store = PsamKeyStore(sam)

    first = store.expected_response(1, NUMBER, ISSUER, CHALLENGE)
    second = store.expected_response(1, NUMBER, ISSUER, CHALLENGE)

    assert first == second == bytes.fromhex(sam_answer())
    assert not sam.steps


def test_psam_without_aid_is_not_selected() -> None:
    sam = ScriptedSam(
        (DIVERSIFY, "9000"),  # DIVERSIFY with key id 1
        (CIPHER, "6110"),  # CIPHER: 16 bytes waiting
        ("00C0000010", sam_answer() + "9000"),  # GET RESPONSE
    )

    assert PsamKeyStore(sam, aid=None).expected_response(1, NUMBER, ISSUER, CHALLENGE)


def test_psam_unknown_key_id() -> None:
    sam = ScriptedSam(
        (SELECT_SAM, "9000"),  # SELECT SAM application
        ("801A000913" + DIVERSIFY[10:], "6A88"),  # DIVERSIFY with key id 9: no such key
    )

    with pytest.raises(KeyStoreError, match="no master key with id 9"):
        PsamKeyStore(sam).expected_response(9, NUMBER, ISSUER, CHALLENGE)


def test_psam_that_lost_its_state_is_selected_again() -> None:
    sam = ScriptedSam(
        (SELECT_SAM, "9000"),  # SELECT SAM application
        (DIVERSIFY, "9000"),  # DIVERSIFY
        (CIPHER, sam_answer() + "9000"),  # CIPHER
        (DIVERSIFY, "6985"),  # next card: DIVERSIFY refused, the SAM was reset
        (SELECT_SAM, "9000"),  # SELECT SAM application again
        (DIVERSIFY, "9000"),  # DIVERSIFY
        (CIPHER, sam_answer() + "9000"),  # CIPHER
    )
    store = PsamKeyStore(sam)

    store.expected_response(1, NUMBER, ISSUER, CHALLENGE)
    assert store.expected_response(1, NUMBER, ISSUER, CHALLENGE) == bytes.fromhex(sam_answer())
    assert not sam.steps


def test_psam_link_failure_is_retried_once() -> None:
    sam = ScriptedSam(
        (SELECT_SAM, CardTornError("SAM reader gone")),  # SELECT SAM application
        (SELECT_SAM, "9000"),  # SELECT SAM application, after reconnecting
        (DIVERSIFY, "9000"),  # DIVERSIFY
        (CIPHER, sam_answer() + "9000"),  # CIPHER
    )

    assert PsamKeyStore(sam).expected_response(1, NUMBER, ISSUER, CHALLENGE)


def test_psam_failing_twice_is_a_key_store_error() -> None:
    sam = ScriptedSam(
        (SELECT_SAM, "9000"),  # SELECT SAM application
        (DIVERSIFY, CardTornError("SAM reader gone")),  # DIVERSIFY
        (SELECT_SAM, CardTornError("SAM reader gone")),  # SELECT SAM application again
    )

    with pytest.raises(KeyStoreError, match="SAM reader gone"):
        PsamKeyStore(sam).expected_response(1, NUMBER, ISSUER, CHALLENGE)


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (["6A82"], "application not found"),
        (["9000", "6982"], "SW 6982"),
        (["9000", "9000", "00" * 8 + "9000"], "8 bytes"),
        (["9000", "9000", "6F00"], "CIPHER: SW 6F00"),
    ],
)
def test_psam_errors(answers: list[str], message: str) -> None:
    commands = [SELECT_SAM, DIVERSIFY, CIPHER]
    sam = ScriptedSam(*zip(commands, answers, strict=False))

    with pytest.raises(KeyStoreError, match=message):
        PsamKeyStore(sam).expected_response(1, NUMBER, ISSUER, CHALLENGE)


def test_psam_check_selects_the_application() -> None:
    sam = ScriptedSam((SELECT_SAM, "6A82"))  # SELECT SAM application: wrong card in the slot

    with pytest.raises(KeyStoreError, match="application not found"):
        PsamKeyStore(sam).check()


def test_psam_emulator_agrees_with_the_software_key_store() -> None:
    for chain in (False, True):
        store = PsamKeyStore(InProcessSam(EmulatedSam({1: MASTER}, chain=chain)))
        expected = SoftwareKeyStore({1: MASTER}).expected_response(1, NUMBER, ISSUER, CHALLENGE)
        assert store.expected_response(1, NUMBER, ISSUER, CHALLENGE) == expected
    assert "2B7E" not in repr(EmulatedSam({1: MASTER})).upper()
