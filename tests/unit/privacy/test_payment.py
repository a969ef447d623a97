"""Payment data cut from a caller's words, in each form Whisper writes it, and the numbers of an
ordinary conversation left alone."""

from __future__ import annotations

import pytest

from app.privacy import CARD_NUMBER, EXPIRY_DATE, SECURITY_CODE, luhn_valid, redact_payment_data
from app.privacy.numbers import digit_runs

# Test card numbers that pass the Luhn check (Stripe's and Visa's documented test numbers).
VISA = "4242424242424242"
AMEX = "378282246310005"


def redacted(text: str) -> str:
    return redact_payment_data(text).text


def test_luhn() -> None:
    assert luhn_valid(VISA) and luhn_valid(AMEX) and luhn_valid("4111111111111111")
    assert not luhn_valid("4242424242424241") and not luhn_valid("")


@pytest.mark.parametrize(
    "said",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "4,242,424,242,424,242",
        "four two four two four two four two four two four two four two four two",
        "Four, two, four, two. Four, two, four, two. Four two four two, four two four two",
        "4 2 4 2 four two four two 4242 4 two 4 two",
        "forty two forty two forty-two forty two forty two forty two forty two forty two",
        "four double two four four two four two four two four two four two four two",
    ],
)
def test_a_visa_number_in_every_form(said: str) -> None:
    redaction = redact_payment_data(f"Sure, my card number is {said}. Thanks.")
    assert redaction.text == f"Sure, my card number is {CARD_NUMBER}. Thanks."
    assert redaction.found == ("card number",)


def test_oh_is_zero_inside_a_number() -> None:
    # 3782 8224 6310 005: the Amex test number, zeros read as "oh".
    said = "three seven eight two, eight two two four, six three one oh, oh oh five"
    assert redacted(f"it's {said}") == f"it's {CARD_NUMBER}"


def test_double_and_triple() -> None:
    said = "three seven eight two eight double two four six three one triple oh five"
    assert redacted(said) == CARD_NUMBER


def test_a_number_without_card_words_is_found_by_its_check_digit() -> None:
    assert redacted(f"it is {AMEX} ok") == f"it is {CARD_NUMBER} ok"
    # Sixteen digits that fail Luhn, with no card in sight: a reference number, kept.
    assert redacted("reference 4242424242424241") == "reference 4242424242424241"


def test_a_misheard_card_number_is_still_a_card_number() -> None:
    # One digit wrong (fails Luhn), but the caller is reading their card.
    text = "my visa is 4242 4242 4242 4241"
    assert redacted(text) == f"my visa is {CARD_NUMBER}"


def test_expiry_and_code_read_straight_after_the_number_go_with_it() -> None:
    assert redacted(f"{VISA} 0527 123") == CARD_NUMBER


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("the security code is 123", f"the security code is {SECURITY_CODE}"),
        ("CVV: 1234", f"CVV: {SECURITY_CODE}"),
        ("my cvc is one two three", f"my cvc is {SECURITY_CODE}"),
        (
            "the code on the back is, um, seven seven eight",
            f"the code on the back is, um, {SECURITY_CODE}",
        ),
        ("the three digit code is double seven eight", f"the three digit code is {SECURITY_CODE}"),
    ],
)
def test_security_codes(said: str, expected: str) -> None:
    assert redacted(said) == expected


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        (f"card {VISA} expires 05/27", f"card {CARD_NUMBER} expires {EXPIRY_DATE}"),
        ("the card expiry is oh five twenty seven", f"the card expiry is {EXPIRY_DATE}"),
        ("expiry date 12/2027", f"expiry date {EXPIRY_DATE}"),
        ("my visa is valid thru May 2027", f"my visa is valid thru {EXPIRY_DATE}"),
    ],
)
def test_expiry_dates_near_a_card(said: str, expected: str) -> None:
    assert redacted(said) == expected


def test_everything_in_one_sentence() -> None:
    redaction = redact_payment_data(
        "card 4242 4242 4242 4242, expires 05/27, and the security code is 123"
    )
    assert redaction.text == (
        f"card {CARD_NUMBER}, expires {EXPIRY_DATE}, and the security code is {SECURITY_CODE}"
    )
    assert redaction.found == ("card number", "expiry date", "security code")


@pytest.mark.parametrize(
    "said",
    [
        "call me back on +1 415 555 0123",
        "my number is four one five, five five five, oh one two three",
        "where is order 12345",
        "order number one two three four five",
        "can I come at four thirty",
        "my account is 12345678",  # eight digits, fails Luhn
        "the reference is 8 7 6 5 4 3 2 1",
        "I have 3 cards",
        "the promo code is 1234",  # a code, but not a card's
        "my subscription expires in 2026",  # not a card's expiry
        "the card ending in 4242",  # the last four are not secret
        "Oh, I see. Two tickets for two people, too.",
        "It was 2024-01-15 at 10:30",
    ],
)
def test_ordinary_numbers_are_kept(said: str) -> None:
    redaction = redact_payment_data(said)
    assert redaction.text == said and not redaction.changed


def test_runs_keep_their_place_in_the_text() -> None:
    (run,) = digit_runs("call four one five now")
    assert run.digits == "415" and (run.start, run.end) == (5, 18)
    # An interjection or a homophone at the edge is not a digit.
    (run,) = digit_runs("Oh, for 4242 to")
    assert run.digits == "4242"
    (run,) = digit_runs("oh five twenty seven")
    assert run.digits == "0527"
