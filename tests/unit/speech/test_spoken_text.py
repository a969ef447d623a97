"""Written text to speakable text: each category as a person says it, ordinary text untouched,
and no input that makes it fail."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.speech.spoken_text import speakable

TODAY = date(2026, 5, 1)

CASES: dict[str, list[tuple[str, str]]] = {
    "times": [
        ("10:00am", "ten a.m."),
        ("10:00 AM", "ten a.m."),
        ("10 am", "ten a.m."),
        ("7am", "seven a.m."),
        ("14:30", "two thirty p.m."),
        ("6:05 p.m.", "six oh five p.m."),
        ("09:15", "nine fifteen a.m."),
        ("10:30", "ten thirty"),
        ("11:00", "eleven o'clock"),
        ("12pm", "noon"),
        ("12:00 am", "midnight"),
        ("00:00", "midnight"),
        ("12:45 PM", "twelve forty-five p.m."),
        ("We open at 10:00am.", "We open at ten a.m."),
        ("noon", "noon"),
    ],
    "dates": [
        ("2026-12-06", "Sunday, December sixth"),
        ("2027-01-05", "Tuesday, January fifth, twenty twenty-seven"),
        ("12/06/2026", "Sunday, December sixth"),
        ("25/12/2026", "Friday, December twenty-fifth"),
        ("December 6", "December sixth"),
        ("Dec 6th, 2027", "December sixth, twenty twenty-seven"),
        ("on 6 December", "on the sixth of December"),
        ("the 21st of June", "the twenty-first of June"),
        ("2026-02-30", "2026-02-30"),  # no such day: left as written
    ],
    "money": [
        ("$49", "49 dollars"),
        ("$49.99", "49 dollars and 99 cents"),
        ("$1,250", "1,250 dollars"),
        ("$1,250.50", "1,250 dollars and 50 cents"),
        ("$1", "1 dollar"),
        ("$0.99", "99 cents"),
        ("$49.00", "49 dollars"),
        ("USD 20", "20 dollars"),
        ("20 USD", "20 dollars"),
        ("€5", "5 euros"),
        ("£1.50", "1 pound and 50 pence"),
        ("$2.5 million", "2.5 million dollars"),
        ("$5k", "5 thousand dollars"),
        ("$49/month", "49 dollars per month"),
        ("$10-$20", "10 to 20 dollars"),
        ("It costs $49.99.", "It costs 49 dollars and 99 cents."),
    ],
    "ids": [
        ("A1042", "A, 1 0 4 2"),
        ("B-7781", "B, 7 7 8 1"),
        ("1Z999AA10123456784", "1, Z, 9 9 9, A, A, 1 0 1, 2 3 4 5, 6 7 8 4"),
        ("order #1042", "order number 1 0 4 2"),
        ("Your order number is 1042.", "Your order number is 1 0 4 2."),
        ("order 10423", "order 1 0 4 2 3"),
        ("order 300 pizzas", "order 300 pizzas"),  # a quantity, not an id
        ("zip code 94103", "zip code 9 4 1 0 3"),
        ("#12", "number 12"),
        ("9400111899223100", "9 4 0, 0 1 1, 1 8 9, 9 2 2, 3 1 0 0"),
        ("Boeing-737", "Boeing, 7 3 7"),
        ("B12", "B12"),  # fewer than three digits: a name, read as written
        ("COVID-19", "COVID-19"),
    ],
    "phones": [
        ("+14155550123", "plus 1, 4 1 5, 5 5 5, 0 1 2 3"),
        ("+442079460958", "plus 4 4 2, 0 7 9, 4 6 0, 9 5 8"),
        ("+44 20 7946 0958", "plus 4 4, 2 0, 7 9 4 6, 0 9 5 8"),
        ("(415) 555-0123", "4 1 5, 5 5 5, 0 1 2 3"),
        ("415-555-0123", "4 1 5, 5 5 5, 0 1 2 3"),
        ("1-800-555-0199", "1, 8 0 0, 5 5 5, 0 1 9 9"),
    ],
    "percent_units_ordinals": [
        ("20%", "20 percent"),
        ("4.5%", "4.5 percent"),
        ("5 kg", "5 kilograms"),
        ("5kg", "5 kilograms"),
        ("10 km", "10 kilometers"),
        ("3 lbs", "3 pounds"),
        ("1 lb", "1 pound"),
        ("10 km/h", "10 kilometers per hour"),
        ("72°F", "72 degrees Fahrenheit"),
        ("3rd", "third"),
        ("the 21st floor", "the twenty-first floor"),
        ("the 1990s", "the nineteen nineties"),
        ("the '80s", "the eighties"),
        ("wait 30s", "wait 30s"),  # maybe seconds: not a decade
        ("24/7", "24 7"),
    ],
    "ranges": [
        ("7-6", "7 to 6"),
        ("Monday-Saturday", "Monday to Saturday"),
        ("Mon\u2013Fri", "Monday to Friday"),
        ("7am-6pm", "seven a.m. to six p.m."),
        ("9-11am", "nine to eleven a.m."),
        ("10:00-18:00", "ten a.m. to six p.m."),
        ("5-10 kg", "5 to 10 kilograms"),
        ("10-15%", "10 to 15 percent"),
    ],
    "whole_replies": [
        (
            "We're open 7am-6pm, Monday-Saturday. Your order A1042 ships on 2026-12-06.",
            "We're open seven a.m. to six p.m., Monday to Saturday. Your order A, 1 0 4 2 ships "
            "on Sunday, December sixth.",
        ),
        (
            "Call +14155550123 about the $49/month plan.",
            "Call plus 1, 4 1 5, 5 5 5, 0 1 2 3 about the 49 dollars per month plan.",
        ),
    ],
}

UNCHANGED = [
    "Hello, how can I help you today?",
    "I am here to help.",
    "Call me at 5.",
    "We have 3 rooms left and 45 seats.",
    "The meeting is at noon.",
    "Pi is about 3.14, and the population is 1,000,000.",
    "Sure - let me check that for you.",
    "Dr. Smith sees patients on Sunday.",
    "Is version 2 okay?",
    "",
]


@pytest.mark.parametrize(
    ("written", "spoken"),
    [pytest.param(w, s, id=f"{cat}:{w}") for cat, cases in CASES.items() for w, s in cases],
)
def test_spoken_as_a_person_says_it(written: str, spoken: str) -> None:
    assert speakable(written, today=TODAY) == spoken


@pytest.mark.parametrize("written", UNCHANGED)
def test_ordinary_text_is_left_as_written(written: str) -> None:
    assert speakable(written, today=TODAY) == written


@pytest.mark.parametrize(
    "spoken", [s for cases in CASES.values() for _, s in cases], ids=lambda s: s[:40]
)
def test_speakable_text_stays_as_it_is(spoken: str) -> None:
    """A reply the model already wrote in words is not rewritten a second time."""
    assert speakable(spoken, today=TODAY) == spoken


def test_the_year_is_said_unless_it_is_this_year() -> None:
    assert speakable("2026-12-06", today=date(2026, 1, 1)) == "Sunday, December sixth"
    assert (
        speakable("2026-12-06", today=date(2027, 1, 1))
        == "Sunday, December sixth, twenty twenty-six"
    )


_TRICKY = st.text(
    alphabet=st.sampled_from(
        list("0123456789aAmMpPkKgGsStTh:.,-/#$€£%°+()' \u2013\n") + ["\U000f0000", "\U000f0003"]
    ),
    max_size=60,
)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(st.text(max_size=80), _TRICKY))
def test_never_fails_on_any_text(text: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="app.speech.spoken_text"):
        out = speakable(text, today=TODAY)
    assert isinstance(out, str)
    assert not caplog.records, "speakable fell back to the written text after an error"


@given(
    text=st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzAIT .,!?'")), max_size=80)
)
def test_text_without_numbers_or_symbols_is_unchanged(text: str) -> None:
    assert speakable(text, today=TODAY) == text
