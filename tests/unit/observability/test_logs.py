"""The privacy mask on log records: phone numbers, keypad digits and client-supplied values."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from app.observability.logs import (
    MASK,
    MAX_ARG_CHARS,
    PrivacyFilter,
    install_log_privacy,
    mask,
)

CALL = "CA" + "0123456789abcdef" * 2
ORG = "123e4567-e89b-12d3-a456-426614174000"


@pytest.fixture
def masked_logs() -> Iterator[None]:
    """The record factory as `configure_logging` leaves it, restored afterwards."""
    factory = logging.getLogRecordFactory()
    install_log_privacy()
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)


def test_phone_numbers_keep_their_last_two_digits() -> None:
    assert mask("from +14155550112") == f"from +{MASK * 9}12"
    assert mask("to +1 415 555 0112.") == f"to +{MASK * 9}12."
    assert mask("number 4155550112") == f"number {MASK * 8}12"
    assert mask("call (415) 555-0112") == f"call {MASK * 8}12"


def test_ids_times_and_short_numbers_are_not_phone_numbers() -> None:
    for text in (
        f"call {CALL} of org {ORG}",
        "order 12345 took 30 s",
        "at 1700000000.125",
        "peer 192.168.100.200",
    ):
        assert mask(text) == text


def test_keypad_digits_are_masked() -> None:
    assert mask("call CA1: caller pressed 4") == f"call CA1: caller pressed {MASK}"
    assert mask("keypad 9 moves the flow to billing") == f"keypad {MASK} moves the flow to billing"
    assert mask('{"event": "dtmf", "dtmf": {"digit": "7"}}').count("7") == 0


def test_a_record_with_a_phone_number_and_keyed_digits_is_masked(
    masked_logs: None, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("app.calls.session")
    with caplog.at_level(logging.INFO):
        logger.info("call %s: caller pressed %s", CALL, "5")
        logger.warning("call %s: nobody answers %s; hanging up", CALL, "+14155550112")
        logger.info(
            "caller %(number)s keyed %(digits)s", {"number": "+442071838750", "digits": "1"}
        )
    pressed, nobody, mapping = caplog.records
    assert pressed.getMessage() == f"call {CALL}: caller pressed {MASK}"
    assert nobody.getMessage() == f"call {CALL}: nobody answers +{MASK * 9}12; hanging up"
    assert "2071838750" not in mapping.getMessage() and mapping.getMessage().endswith(
        f"50 keyed {MASK}"
    )
    assert "+14155550112" not in caplog.text and "pressed 5" not in caplog.text


def test_an_exception_message_is_masked(
    masked_logs: None, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise ValueError("no route to +14155550112")
    except ValueError:
        logging.getLogger("app").exception("transfer failed")
    assert "+14155550112" not in caplog.text and f"+{MASK * 9}12" in caplog.text


def test_a_client_value_cannot_forge_a_log_line(
    masked_logs: None, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "x\n2024-01-01 INFO app.api: admin logged in"
    logging.getLogger("app.api").warning("bad event %s", forged)
    logging.getLogger("app.api").warning("bad event %s", "y" * 10_000)
    first, long = caplog.records
    assert "\n" not in first.getMessage() and "\\n2024" in first.getMessage()
    assert len(long.getMessage()) < MAX_ARG_CHARS + 50


def test_the_filter_works_on_its_own_and_never_drops_a_record() -> None:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "dial %s", ("4155550112",), None)
    assert PrivacyFilter().filter(record) is True
    assert record.getMessage() == f"dial {MASK * 8}12"
    broken = logging.LogRecord("app", logging.INFO, __file__, 1, "%s %s", ("one",), None)
    assert PrivacyFilter().filter(broken) is True
