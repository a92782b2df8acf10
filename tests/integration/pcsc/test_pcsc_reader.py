"""The PC/SC reader through the real stack: pyscard -> pcscd -> vpcd -> emulator processes."""

import logging
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from drivers.interfaces import CardPresented, CardRemoved, ReaderEvent, TapIncomplete
from drivers.pcsc import PcscCardReader, PsamKeyStoreSettings
from models.cards import CardFault, Genuineness, PresentedCard
from models.reasons import Reason

MakeReader = Callable[..., PcscCardReader]
Emulators = Any  # conftest.Emulators; conftest is not importable under every import mode


def next_event(reader: PcscCardReader, timeout: float = 5.0) -> ReaderEvent:
    """The next event; fails the test, showing the reader's health, when none comes in time."""
    event = reader.next_event(timeout)
    if event is None:
        pytest.fail(f"no reader event within {timeout} s; health: {reader.health()}")
    return event


def presented(reader: PcscCardReader) -> PresentedCard | CardFault:
    event = next_event(reader)
    assert isinstance(event, CardPresented), event
    return event.credential


def presented_card(reader: PcscCardReader) -> PresentedCard:
    credential = presented(reader)
    assert isinstance(credential, PresentedCard), credential
    return credential


def psam(emulators: Emulators) -> PsamKeyStoreSettings:
    return PsamKeyStoreSettings(type="psam", reader_pattern=emulators.sam_reader)


def wait_health(reader: PcscCardReader, state: str, timeout: float = 10.0) -> str:
    """Wait until ``health().state == state``; returns the health detail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = reader.health()
        if health.state == state:
            assert health.ok is (state == "ready"), health
            return health.detail
        time.sleep(0.05)
    pytest.fail(f"health never reached {state!r}: {reader.health()}")


def test_genuine_card_is_read_once_per_insertion(
    make_reader: MakeReader, emulators: Emulators
) -> None:
    reader = make_reader()
    card = emulators.card("--class-code", "2", "--issue-seq", "4", "--valid-until", "2031-06-30")

    credential = presented_card(reader)
    assert credential.number == emulators.card_number
    assert credential.genuine is Genuineness.GENUINE
    assert (credential.class_code, credential.issue_seq) == (2, 4)
    assert credential.valid_from == date(2024, 1, 1)
    assert credential.valid_until == date(2031, 6, 30)
    # The reader times its part of the tap; the PC/SC exchanges are a share of it.
    timing = reader.last_tap
    assert timing is not None
    assert 0 < timing.pcsc_ns < timing.read_ns
    assert "last read" in reader.health().detail

    # A card left on the reader is not a second tap.
    assert reader.next_event(1.0) is None
    emulators.kill(card)
    assert isinstance(next_event(reader), CardRemoved)
    assert reader.health().ok


def test_cloned_card_is_not_genuine(make_reader: MakeReader, emulators: Emulators) -> None:
    reader = make_reader()
    emulators.card("--cloned")

    credential = presented_card(reader)
    assert credential.number == emulators.card_number
    assert credential.genuine is Genuineness.NOT_GENUINE


@pytest.mark.parametrize(
    "tear_after", [0, 1, 2], ids=["during-select", "during-read", "during-authenticate"]
)
def test_tearing_gives_tap_incomplete_and_a_retap_succeeds(
    make_reader: MakeReader, emulators: Emulators, tear_after: int
) -> None:
    reader = make_reader()
    # pcscd must see the slot empty between tear and re-tap: wait longer than one poll.
    emulators.card("--tear-after", str(tear_after), "--retap-after", "0.6")

    assert isinstance(next_event(reader), TapIncomplete)
    assert presented_card(reader).genuine is Genuineness.GENUINE
    assert "2 taps, 1 incomplete" in reader.health().detail


def test_chained_answers_use_get_response(make_reader: MakeReader, emulators: Emulators) -> None:
    reader = make_reader()
    emulators.card("--chain")

    assert presented_card(reader).genuine is Genuineness.GENUINE


def test_malformed_public_file_is_a_card_fault(
    make_reader: MakeReader, emulators: Emulators
) -> None:
    reader = make_reader()
    emulators.card("--malformed", "bcd")

    fault = presented(reader)
    assert isinstance(fault, CardFault)
    assert fault.reason is Reason.CARD_MALFORMED


def test_uid_only_card_in_uid_mode(
    make_reader: MakeReader, emulators: Emulators, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="drivers.pcsc"):
        reader = make_reader(mode="uid", key_store=None)
    assert "UID mode" in caplog.text
    emulators.card("--uid-only", "--uid", "04AABBCCDDEE80", genuine_data=False)

    credential = presented_card(reader)
    assert credential.number == "04AABBCCDDEE80"
    assert credential.genuine is Genuineness.UID_ONLY
    health = reader.health()
    assert "UID mode" in health.detail and health.warning and "cloned" in health.warning


def test_uid_only_card_in_cpu_mode_is_unknown(
    make_reader: MakeReader, emulators: Emulators
) -> None:
    reader = make_reader()
    emulators.card("--uid-only", genuine_data=False)

    fault = presented(reader)
    assert isinstance(fault, CardFault)
    assert fault.reason is Reason.CARD_UNKNOWN
    assert "6A82" in fault.detail


def test_card_that_does_not_answer_in_time_is_incomplete(
    make_reader: MakeReader, emulators: Emulators
) -> None:
    reader = make_reader(apdu_timeout_ms=300)
    slow = emulators.card("--slow", "0.8")

    event = next_event(reader)
    assert isinstance(event, TapIncomplete)
    assert "0.3 s" in event.detail
    emulators.kill(slow)
    time.sleep(0.5)
    emulators.card()
    assert presented_card(reader).genuine is Genuineness.GENUINE


def test_card_emulator_killed_and_restarted(make_reader: MakeReader, emulators: Emulators) -> None:
    reader = make_reader()
    first = emulators.card()
    assert presented_card(reader).genuine is Genuineness.GENUINE

    emulators.kill(first)
    assert isinstance(next_event(reader), CardRemoved)
    emulators.card()
    assert presented_card(reader).genuine is Genuineness.GENUINE
    health = reader.health()
    assert health.ok
    assert health.state == "ready"
    assert "2 taps, 0 incomplete" in health.detail


def test_pcscd_restart_is_recovered(
    make_reader: MakeReader, emulators: Emulators, pcscd: Any
) -> None:
    if not pcscd.owned:
        pytest.skip("pcscd was started outside the tests; it is not theirs to restart")
    reader = make_reader()
    emulators.card()  # reconnects to vpcd by itself when pcscd comes back
    assert presented_card(reader).genuine is Genuineness.GENUINE

    try:
        pcscd.stop()
        wait_health(reader, "pcscd_unavailable", timeout=5)
        # Whatever the reader had presented is closed off, never left dangling.
        assert isinstance(next_event(reader), CardRemoved)
    finally:
        pcscd.start()
    detail = wait_health(reader, "ready", timeout=10)
    assert "1 recoveries" in detail
    # The card still in the slot is a new presentation for the new pcscd.
    assert presented_card(reader).genuine is Genuineness.GENUINE


def test_reader_missing_is_reported_not_raised(make_reader: MakeReader) -> None:
    reader = make_reader(reader_pattern="No Such Reader 99")

    assert reader.next_event(0.5) is None
    health = reader.health()
    assert not health.ok
    assert health.state == "reader_missing"
    assert "No Such Reader 99" in health.detail


def test_psam_genuine_and_cloned(make_reader: MakeReader, emulators: Emulators) -> None:
    # A PSAM sits in its slot before the terminal starts; under load pcscd's 400 ms polling may
    # not have seen a freshly started emulator yet, so wait for that as a real install would.
    emulators.wait_in_field(emulators.sam())
    reader = make_reader(key_store=psam(emulators))
    wait_health(reader, "ready", timeout=5)

    card = emulators.card()
    assert presented_card(reader).genuine is Genuineness.GENUINE
    emulators.kill(card)
    assert isinstance(next_event(reader), CardRemoved)

    emulators.card("--cloned")
    assert presented_card(reader).genuine is Genuineness.NOT_GENUINE


def test_missing_psam_is_reported_and_recovered(
    make_reader: MakeReader, emulators: Emulators
) -> None:
    reader = make_reader(key_store=psam(emulators))
    wait_health(reader, "key_store_unavailable", timeout=5)

    card = emulators.card()
    event = next_event(reader)
    assert isinstance(event, TapIncomplete)
    assert "key store" in event.detail
    emulators.kill(card)

    # The SAM's answers also go through GET RESPONSE.
    emulators.wait_in_field(emulators.sam("--chain"))
    wait_health(reader, "ready", timeout=5)
    emulators.card()
    assert presented_card(reader).genuine is Genuineness.GENUINE


def test_psam_replaced_between_taps(make_reader: MakeReader, emulators: Emulators) -> None:
    sam = emulators.sam()
    emulators.wait_in_field(sam)
    reader = make_reader(key_store=psam(emulators))
    wait_health(reader, "ready", timeout=5)
    card = emulators.card()
    assert presented_card(reader).genuine is Genuineness.GENUINE
    emulators.kill(card)
    assert isinstance(next_event(reader), CardRemoved)

    # The SAM leaves and comes back: the old handle is dead, the key store reconnects and
    # selects the SAM application again within the same tap.
    emulators.kill(sam)
    time.sleep(0.5)
    emulators.wait_in_field(emulators.sam())
    emulators.card()
    assert presented_card(reader).genuine is Genuineness.GENUINE
    assert reader.health().ok
