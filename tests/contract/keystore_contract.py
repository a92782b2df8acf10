"""The KeyStore contract: every key store gives the card's answer the reference computes.

What every implementation of :class:`drivers.keystore.KeyStore` promises, whatever holds the
master keys:

- for the same master key, key id, card number, issuer id and challenge it answers the same
  16 bytes as the reference, ``encrypt_block(diversify(master, number, issuer), challenge)``
  (drivers/keystore.py), for any card and any challenge, call after call and from two threads at
  once (one PSAM serves the entry and the exit reader);
- :func:`drivers.keystore.derive_pin_key` gives the same PIN key as the reference, different per
  master key: a PIN hash sealed on one terminal checks on another whatever its key store;
- a key id it has no key for raises :class:`~drivers.keystore.KeyStoreError`, whose text shows no
  key material, and the store keeps answering for the keys it has;
- a key id outside 0..255, a card number that is not 10 bytes, an issuer id that is not 8 bytes
  or a challenge that is not 16 bytes raises ``ValueError`` before anything is sent to the key
  holder.

Run on :class:`~drivers.keystore.SoftwareKeyStore` (from a key file) and on
:class:`~drivers.keystore.PsamKeyStore` over the emulated PSAM in process (plain and chained
answers) in tests/contract/test_keystore.py, and on :class:`~drivers.keystore.PsamKeyStore`
through pyscard, a real pcscd, vpcd and the PSAM emulator process in
tests/integration/pcsc/test_keystore_contract.py.
"""

import random
import threading
from typing import Protocol

import pytest

from drivers.keystore import (
    PIN_KEY_CHALLENGE,
    PIN_KEY_ISSUER,
    PIN_KEY_NUMBER,
    KeyStore,
    KeyStoreError,
    derive_pin_key,
    diversify,
    encrypt_block,
)

# The test master keys every harness loads: the one the card emulators use, and a second one.
MASTER_KEYS: dict[int, bytes] = {
    1: bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C"),
    7: bytes.fromhex("000102030405060708090A0B0C0D0E0F"),
}
UNKNOWN_KID = 0x42
NUMBER = bytes.fromhex("31000000000000012345")
ISSUER = bytes.fromhex("5943484E00000001")
CHALLENGE = bytes(range(0xA0, 0xB0))


class Transmits(Protocol):
    def transmit(self, apdu: bytes) -> bytes: ...


class CountingTransport:
    """For PSAM harnesses: passes every APDU on and counts it (what reached the key holder)."""

    def __init__(self, inner: Transmits) -> None:
        self.inner = inner
        self.count = 0

    def transmit(self, apdu: bytes) -> bytes:
        self.count += 1
        return self.inner.transmit(apdu)


class KeyStoreHarness(Protocol):
    """A key store loaded with :data:`MASTER_KEYS`, and a count of what reached its key holder."""

    keystore: KeyStore
    sends_commands: bool  # False for a store that computes in process

    def sent(self) -> int:
        """Commands sent to the key holder so far (a software store sends none)."""
        ...


def reference(kid: int, number: bytes, issuer: bytes, challenge: bytes) -> bytes:
    return encrypt_block(diversify(MASTER_KEYS[kid], number, issuer), challenge)


def cases(seed: int, count: int) -> list[tuple[int, bytes, bytes, bytes]]:
    """Varied inputs, the same on every run: both key ids, many cards, issuers and challenges."""
    rng = random.Random(seed)
    made = [(1, NUMBER, ISSUER, CHALLENGE), (7, NUMBER, ISSUER, CHALLENGE)]
    for i in range(count - len(made)):
        number = bytes.fromhex("".join(rng.choice("0123456789") for _ in range(20)))
        made.append((sorted(MASTER_KEYS)[i % 2], number, rng.randbytes(8), rng.randbytes(16)))
    return made


class KeyStoreContract:
    """Subclass as ``Test...`` with a ``harness`` fixture that yields a ready harness."""

    def test_answers_what_the_reference_computes(self, harness: KeyStoreHarness) -> None:
        for kid, number, issuer, challenge in cases(seed=1, count=12):
            answer = harness.keystore.expected_response(kid, number, issuer, challenge)
            assert isinstance(answer, bytes)
            assert answer == reference(kid, number, issuer, challenge), (kid, number.hex())

    def test_every_input_changes_the_answer(self, harness: KeyStoreHarness) -> None:
        # A store that ignored one input would still match the reference on some cases.
        store = harness.keystore
        base = store.expected_response(1, NUMBER, ISSUER, CHALLENGE)
        other_number = NUMBER[:-1] + b"\x46"
        other_issuer = ISSUER[:-1] + b"\x02"
        other_challenge = CHALLENGE[:-1] + b"\x00"
        variants = {
            "kid": store.expected_response(7, NUMBER, ISSUER, CHALLENGE),
            "number": store.expected_response(1, other_number, ISSUER, CHALLENGE),
            "issuer": store.expected_response(1, NUMBER, other_issuer, CHALLENGE),
            "challenge": store.expected_response(1, NUMBER, ISSUER, other_challenge),
        }
        for what, answer in variants.items():
            assert answer != base, f"the answer does not depend on the {what}"
        # ...and the first card's answer is still its own after the others (no state kept).
        assert store.expected_response(1, NUMBER, ISSUER, CHALLENGE) == base

    def test_two_threads_at_once_each_get_their_own_answer(self, harness: KeyStoreHarness) -> None:
        work = {name: cases(seed=seed, count=6) for name, seed in (("entry", 2), ("exit", 3))}
        answers: dict[str, list[bytes]] = {name: [] for name in work}
        errors: list[BaseException] = []

        def run(name: str) -> None:
            try:
                for case in work[name]:
                    answers[name].append(harness.keystore.expected_response(*case))
            except BaseException as exc:  # handed to the test thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(name,), daemon=True) for name in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "a key store call never returned"
        assert not errors, errors
        for name, done in work.items():
            assert answers[name] == [reference(*case) for case in done], name

    def test_pin_key_agrees_with_the_reference(self, harness: KeyStoreHarness) -> None:
        keys = {kid: derive_pin_key(harness.keystore, kid) for kid in MASTER_KEYS}
        for kid, key in keys.items():
            assert len(key) == 16
            assert key == reference(kid, PIN_KEY_NUMBER, PIN_KEY_ISSUER, PIN_KEY_CHALLENGE)
        assert keys[1] != keys[7]

    def test_an_unknown_key_id_is_a_key_store_error(self, harness: KeyStoreHarness) -> None:
        with pytest.raises(KeyStoreError) as raised:
            harness.keystore.expected_response(UNKNOWN_KID, NUMBER, ISSUER, CHALLENGE)
        text = f"{raised.value} {raised.value!r}".lower()
        for key in MASTER_KEYS.values():
            assert key.hex() not in text
        # The refusal leaves the store usable for the keys it has.
        answer = harness.keystore.expected_response(1, NUMBER, ISSUER, CHALLENGE)
        assert answer == reference(1, NUMBER, ISSUER, CHALLENGE)

    def test_wrong_lengths_are_a_value_error_before_anything_is_sent(
        self, harness: KeyStoreHarness
    ) -> None:
        wrong = {
            "kid -1": (-1, NUMBER, ISSUER, CHALLENGE),
            "kid 256": (256, NUMBER, ISSUER, CHALLENGE),
            "number of 9 bytes": (1, NUMBER[:-1], ISSUER, CHALLENGE),
            "number of 11 bytes": (1, NUMBER + b"\x00", ISSUER, CHALLENGE),
            "issuer of 7 bytes": (1, NUMBER, ISSUER[:-1], CHALLENGE),
            "issuer of 9 bytes": (1, NUMBER, ISSUER + b"\x00", CHALLENGE),
            "challenge of 15 bytes": (1, NUMBER, ISSUER, CHALLENGE[:-1]),
            "challenge of 17 bytes": (1, NUMBER, ISSUER, CHALLENGE + b"\x00"),
            "empty challenge": (1, NUMBER, ISSUER, b""),
        }
        before = harness.sent()
        for what, case in wrong.items():
            with pytest.raises(ValueError, match=r"key id|bytes"):
                harness.keystore.expected_response(*case)
            assert harness.sent() == before, f"{what}: sent to the key holder before refusing"
        # The count does move when something is sent, so the check above means something.
        harness.keystore.expected_response(1, NUMBER, ISSUER, CHALLENGE)
        assert (harness.sent() > before) is harness.sends_commands
