"""Card numbers, security codes and expiry dates cut out of what a caller said.

A card number is a run of 13 to 19 digits (spoken or written, see `app.privacy.numbers`) that
passes the Luhn check, or any run that long when the caller talks about a card (a misheard digit
does not make a card number safe to keep). A security code is 3 or 4 digits shortly after words
like "security code", "CVV" or "the code on the back"; an expiry date is the month and year
shortly after "expires", "expiry" or "valid thru" when a card is being talked about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.privacy.numbers import DigitRun, digit_runs

CARD_NUMBER = "[card number]"
SECURITY_CODE = "[security code]"
EXPIRY_DATE = "[expiry date]"

# ISO/IEC 7812 primary account numbers are 13 to 19 digits long.
CARD_MIN_DIGITS, CARD_MAX_DIGITS = 13, 19
# How far after "security code" or "expires" the number may come ("... is, um, 123").
_WORDS_BEFORE_VALUE = 6

_CARD_TALK = re.compile(
    r"\b(?:cards?|credit|debit|visa|master\s?card|amex|american express|discover|maestro"
    r"|card\s?number|long number)\b",
    re.IGNORECASE,
)
_SECURITY_CODE = re.compile(
    r"\b(?:security\s+(?:code|number|digits)|cvv2?|cvc2?|cvn|csc|cid"
    r"|card\s+verification(?:\s+(?:value|code|number))?"
    r"|(?:three|four|3|4)[-\s]digit\s+(?:code|number)"
    r"|(?:code|number|digits)\s+(?:on|at)\s+the\s+back)\b",
    re.IGNORECASE,
)
_EXPIRY = re.compile(
    r"\b(?:expir\w*|exp|valid\s+(?:thru|through|until|till)|good\s+(?:thru|through))\b",
    re.IGNORECASE,
)
_EXPIRY_DATE_WORDS = re.compile(r"\b(?:expiry|expiration|exp)\s+date\b", re.IGNORECASE)
_MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
_MONTH_YEAR = re.compile(
    rf"\b(?:{_MONTHS})\b[\s,]*(?:of\s+)?(?:(?:20)?\d\d\b|(?:twenty|two thousand)[\s-]+\w+"
    r"(?:[\s-]+\w+)?)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z]+")


@dataclass(frozen=True, slots=True)
class Redaction:
    """A text with payment data replaced by placeholders, and what kinds were found."""

    text: str
    found: tuple[str, ...] = ()  # "card number", "security code", "expiry date"

    @property
    def changed(self) -> bool:
        """Something was cut out."""
        return bool(self.found)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check every payment card number passes (ISO/IEC 7812-1)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def redact_payment_data(text: str) -> Redaction:
    """`text` with card numbers, security codes and card expiry dates replaced by
    "[card number]", "[security code]" and "[expiry date]"."""
    runs = digit_runs(text)
    if not runs:
        return Redaction(text)
    cuts: list[tuple[int, int, str]] = []
    card_talk = _CARD_TALK.search(text) is not None
    for run in runs:
        if _is_card_number(run, card_talk=card_talk):
            cuts.append((run.start, run.end, CARD_NUMBER))
    for trigger in _SECURITY_CODE.finditer(text):
        code = _run_after(text, runs, trigger.end())
        if code is not None and 3 <= len(code.digits) <= 4:
            cuts.append((code.start, code.end, SECURITY_CODE))
    card_talk = card_talk or any(label == CARD_NUMBER for *_, label in cuts)
    for trigger in _EXPIRY.finditer(text):
        if not (card_talk or _EXPIRY_DATE_WORDS.match(text, trigger.start())):
            continue
        span = _expiry_after(text, runs, trigger.end())
        if span is not None:
            cuts.append((*span, EXPIRY_DATE))
    return _apply(text, cuts)


def _is_card_number(run: DigitRun, *, card_talk: bool) -> bool:
    if len(run.digits) < CARD_MIN_DIGITS:
        return False
    if card_talk and len(run.digits) <= CARD_MAX_DIGITS + 4:  # a digit misheard or doubled
        return True
    # The whole run, or a stretch of it: the caller may read the expiry right after the number.
    return any(luhn_valid(w) for w in run.windows(CARD_MIN_DIGITS, CARD_MAX_DIGITS))


def _run_after(text: str, runs: list[DigitRun], position: int) -> DigitRun | None:
    """The first run that starts within a few words after `position`."""
    for run in runs:
        if run.start < position:
            continue
        if len(_WORD.findall(text, position, run.start)) <= _WORDS_BEFORE_VALUE:
            return run
        return None
    return None


def _expiry_after(text: str, runs: list[DigitRun], position: int) -> tuple[int, int] | None:
    """Where the expiry date after `position` is: "05/27", "oh five twenty seven", "May 2027"."""
    month = _MONTH_YEAR.search(text, position)
    run = _run_after(text, runs, position)
    if month is not None and len(_WORD.findall(text, position, month.start())) <= (
        _WORDS_BEFORE_VALUE
    ):
        if run is None or month.start() <= run.start:
            return month.start(), month.end()
    if run is not None and 3 <= len(run.digits) <= 6:
        return run.start, run.end
    return None


def _apply(text: str, cuts: list[tuple[int, int, str]]) -> Redaction:
    if not cuts:
        return Redaction(text)
    cuts.sort()
    out: list[str] = []
    found: list[str] = []
    position = 0
    for start, end, label in cuts:
        if start < position:  # overlaps a cut already made: widen that one
            position = max(position, end)
            continue
        out.append(text[position:start])
        out.append(label)
        position = end
        if label[1:-1] not in found:
            found.append(label[1:-1])
    out.append(text[position:])
    return Redaction("".join(out), tuple(found))
