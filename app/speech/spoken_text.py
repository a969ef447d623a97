"""Written text as a voice should say it (English): clock times, dates, money, phone numbers,
order and reference ids, percentages, units, ordinals and ranges become the words a person says.

The model writes "10:00am", "$49.99" and "A1042"; the local voice reads text through espeak-ng's
rules, which say "ten zero zero a m", "dollar forty-nine point nine nine" and "a thousand and
forty-two". `speakable` rewrites only those spans; every other character is left as written.
Plain numbers stay digits because every voice reads "45" as forty-five.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import date

from num2words import num2words

logger = logging.getLogger(__name__)

# A span already rewritten is held as one private-use character until the end, so that a later
# rule cannot rewrite it again (the "1" of "plus 1, 4 1 5" is not a number to say again).
# Such characters are not \w, so the rules' boundaries treat a held span like punctuation.
_HOLD_BASE = 0xF0000
_HOLD_LIMIT = 0xFFFFD
_PRIVATE = re.compile("[\U000f0000-\U000ffffd]")

_MONTHS = (
    "January February March April May June July August September October November December"
).split()
_MONTH_BY_PREFIX = {name[:3].lower(): i + 1 for i, name in enumerate(_MONTHS)}
_MONTH_NAME = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)"
)
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_DAY_BY_ABBREVIATION = {
    **{name.lower(): name for name in _DAYS},
    **{name[:3].lower(): name for name in _DAYS},
    "tues": "Tuesday",
    "thur": "Thursday",
    "thurs": "Thursday",
}
_DAY_NAME = r"(?:" + "|".join(sorted(_DAY_BY_ABBREVIATION, key=len, reverse=True)) + r")"

_DASH = r"[-\u2013\u2014]"  # hyphen, en dash, em dash
_AMOUNT = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"


class _Holds:
    """Spoken forms already decided for spans of one text."""

    def __init__(self) -> None:
        self._spoken: list[str] = []

    def hold(self, spoken: str) -> str:
        if _HOLD_BASE + len(self._spoken) > _HOLD_LIMIT:
            return spoken
        self._spoken.append(spoken)
        return chr(_HOLD_BASE + len(self._spoken) - 1)

    def release(self, text: str) -> str:
        return _PRIVATE.sub(lambda m: self._spoken[ord(m.group()) - _HOLD_BASE], text)


def speakable(text: str, *, today: date | None = None) -> str:
    """`text` as a voice should read it aloud; never raises.

    `today` decides whether a date's year is said (it is not when it is this year's).
    """
    try:
        return _rewrite(text, today or date.today())
    except Exception:  # a reply must still be spoken: as written is better than silence
        logger.exception("could not make text speakable; speaking it as written: %r", text[:200])
        return text


def _rewrite(text: str, today: date) -> str:
    holds = _Holds()
    text = _PRIVATE.sub("", text)  # unpronounceable, and they would collide with held spans
    for rule in _RULES:
        text = rule(text, holds, today)
    return holds.release(text)


# -- words ----------------------------------------------------------------------------------


def _words(number: int) -> str:
    return str(num2words(number))


def _ordinal(number: int) -> str:
    return str(num2words(number, to="ordinal"))


def _year(year: int) -> str:
    return str(num2words(year, to="year"))


def _spell_digits(digits: str) -> str:
    """Digits one by one, in the groups a person pauses between ("5 5 5, 0 1 2 3")."""
    return ", ".join(" ".join(group) for group in _digit_groups(digits))


def _digit_groups(digits: str) -> list[str]:
    n = len(digits)
    if n <= 5:
        return [digits]
    # Threes, with the last one or two groups of four: never a lone digit at the end.
    sizes = {0: [3] * (n // 3), 1: [3] * ((n - 4) // 3) + [4], 2: [3] * ((n - 8) // 3) + [4, 4]}[
        n % 3
    ]
    groups, at = [], 0
    for size in sizes:
        groups.append(digits[at : at + size])
        at += size
    return groups


# -- phone numbers --------------------------------------------------------------------------

_E164 = re.compile(r"(?<![\w+])\+(\d{8,15})(?!\d)")
_INTERNATIONAL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,5}\)|[ .-]\d{1,5}){2,5}(?![\w-])")
_NANP = re.compile(
    r"(?<![\w+$.,])(?:1[ .-])?(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-]|[.,]\d)"
)


def _phones(text: str, holds: _Holds, today: date) -> str:
    def compact(m: re.Match[str]) -> str:
        digits = m.group(1)
        if len(digits) == 11 and digits[0] == "1":  # North America: +1 NPA NXX XXXX
            groups = [digits[0], digits[1:4], digits[4:7], digits[7:]]
        else:
            groups = _digit_groups(digits)
        return holds.hold("plus " + ", ".join(" ".join(g) for g in groups))

    def written(m: re.Match[str]) -> str:
        # The writer's own grouping is how the number is read out.
        groups = re.findall(r"\d+", m.group())
        prefix = "plus " if m.group().startswith("+") else ""
        return holds.hold(prefix + ", ".join(" ".join(g) for g in groups))

    text = _E164.sub(compact, text)
    text = _INTERNATIONAL.sub(written, text)
    return _NANP.sub(written, text)


# -- dates ----------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"(?<![\w.-])(\d{4})-(\d{2})-(\d{2})(?![\w-]|\.\d)")
_NUMERIC_DATE = re.compile(r"(?<![\w/.-])(\d{1,2})/(\d{1,2})/(\d{4})(?![\w/]|\.\d)")
_MONTH_DAY = re.compile(
    rf"\b(?P<month>{_MONTH_NAME})\.?[ ]+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?"
    r"(?:,?[ ]+(?P<year>\d{4}))?(?![\w:]|[.,]\d)"
)
_DAY_MONTH = re.compile(
    rf"(?<![\w.,])(?P<day>\d{{1,2}})(?:st|nd|rd|th)?[ ]+(?:of[ ]+)?(?P<month>{_MONTH_NAME})\b"
    r"(?:,?[ ]+(?P<year>\d{4})(?![\w:]|[.,]\d))?"
)


def _dates(text: str, holds: _Holds, today: date) -> str:
    def said(when: date, *, weekday: bool) -> str:
        spoken = f"{_MONTHS[when.month - 1]} {_ordinal(when.day)}"
        if weekday:
            spoken = f"{_DAYS[when.weekday()]}, {spoken}"
        if when.year != today.year:
            spoken += f", {_year(when.year)}"
        return spoken

    def iso(m: re.Match[str]) -> str:
        when = _valid_date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return m.group() if when is None else holds.hold(said(when, weekday=True))

    def numeric(m: re.Match[str]) -> str:
        first, second, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
        # Month first, as in the US, unless the first number cannot be a month.
        when = _valid_date(year, first, second) or _valid_date(year, second, first)
        return m.group() if when is None else holds.hold(said(when, weekday=True))

    def named(m: re.Match[str], *, day_first: bool) -> str:
        month = _MONTH_BY_PREFIX[m.group("month")[:3].lower()]
        day = int(m.group("day"))
        year = int(m.group("year")) if m.group("year") else None
        if _valid_date(year or 2000, month, day) is None:  # 2000: a leap year, Feb 29 is fine
            return m.group()
        if day_first:
            the = "" if m.string[: m.start()].lower().endswith("the ") else "the "
            spoken = f"{the}{_ordinal(day)} of {_MONTHS[month - 1]}"
        else:
            spoken = f"{_MONTHS[month - 1]} {_ordinal(day)}"
        if year is not None and year != today.year:
            spoken += f", {_year(year)}"
        return holds.hold(spoken)

    text = _ISO_DATE.sub(iso, text)
    text = _NUMERIC_DATE.sub(numeric, text)
    text = _MONTH_DAY.sub(lambda m: named(m, day_first=False), text)
    return _DAY_MONTH.sub(lambda m: named(m, day_first=True), text)


def _valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


# -- clock times ----------------------------------------------------------------------------


def _clock(tag: str) -> str:
    return (
        rf"(?P<c{tag}>(?P<h{tag}>\d{{1,2}})(?::(?P<m{tag}>\d{{2}}))?"
        rf"(?:[ ]?(?P<ap{tag}>[ap])\.?[ ]?m\b\.?)?)"
    )


_TIME = re.compile(
    rf"(?<![\w:.,/$€£+-]){_clock('1')}(?:[ ]*{_DASH}[ ]*{_clock('2')})?(?![\w:%]|[.,]\d)",
    re.IGNORECASE,
)


class _Clock:
    """One written time of day, as far as it is one."""

    def __init__(self, m: re.Match[str], tag: str) -> None:
        hour = m.group(f"h{tag}")
        minute = m.group(f"m{tag}")
        ap = m.group(f"ap{tag}")
        self.hour = int(hour) if hour is not None else -1
        self.minute = int(minute) if minute is not None else 0
        self.ap = ap.lower() if ap else None
        self.has_minutes = minute is not None
        self.zero_padded = hour is not None and len(hour) == 2 and hour[0] == "0"

    @property
    def is_time(self) -> bool:
        """Written with minutes or a.m./p.m. and in range."""
        if self.minute > 59 or self.hour < 0:
            return False
        if self.ap is not None:
            return 1 <= self.hour <= 12
        return self.has_minutes and self.hour <= 23

    @property
    def is_bare_hour(self) -> bool:
        """An hour alone ("7" of "7-9pm"), which borrows its meaning from the range."""
        return self.ap is None and not self.has_minutes and 1 <= self.hour <= 12

    @property
    def twenty_four_hour(self) -> bool:
        return self.ap is None and (self.hour == 0 or self.hour >= 13 or self.zero_padded)

    def said(self, *, twenty_four_hour: bool) -> str:
        hour, ap = self.hour, self.ap
        if ap is None and (twenty_four_hour or self.twenty_four_hour):
            ap = "p" if hour >= 12 else "a"
            hour = hour % 12 or 12
        if ap is not None and hour == 12 and self.minute == 0:
            return "noon" if ap == "p" else "midnight"
        if ap is None and not self.has_minutes:
            return _words(hour)  # the bare start of a range
        if self.minute == 0:
            minutes = "" if ap is not None else " o'clock"
        elif self.minute < 10:
            minutes = f" oh {_words(self.minute)}"
        else:
            minutes = f" {_words(self.minute)}"
        # "a.m." with its dots: espeak-ng says "AM" as the word "am" but "a.m." as letters.
        return f"{_words(hour)}{minutes}" + (f" {ap}.m." if ap is not None else "")


def _times(text: str, holds: _Holds, today: date) -> str:
    def replace(m: re.Match[str]) -> str:
        first = _Clock(m, "1")
        second = _Clock(m, "2") if m.group("c2") is not None else None
        if second is not None and second.is_time and (first.is_time or first.is_bare_hour):
            # "10:00-18:00": both ends on the 24-hour clock when one of them plainly is.
            both24 = first.twenty_four_hour or second.twenty_four_hour
            spoken = f"{first.said(twenty_four_hour=both24)} to "
            return holds.hold(spoken + second.said(twenty_four_hour=both24))
        # Not a range of times: each end that is a time is said as one, the rest as written.
        out = holds.hold(first.said(twenty_four_hour=False)) if first.is_time else m.group("c1")
        if second is None:
            return out
        out += m.string[m.end("c1") : m.start("c2")]
        return out + (
            holds.hold(second.said(twenty_four_hour=False)) if second.is_time else m.group("c2")
        )

    return _TIME.sub(replace, text)


# -- money ----------------------------------------------------------------------------------

_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "US$": ("dollar", "dollars", "cent", "cents"),
    "USD": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "GBP": ("pound", "pounds", "penny", "pence"),
    "CAD": ("Canadian dollar", "Canadian dollars", "cent", "cents"),
    "C$": ("Canadian dollar", "Canadian dollars", "cent", "cents"),
    "AUD": ("Australian dollar", "Australian dollars", "cent", "cents"),
    "A$": ("Australian dollar", "Australian dollars", "cent", "cents"),
}
_SCALE = {
    "k": "thousand",
    "thousand": "thousand",
    "m": "million",
    "mn": "million",
    "million": "million",
    "b": "billion",
    "bn": "billion",
    "billion": "billion",
}
_PER = {
    "mo": "month",
    "month": "month",
    "yr": "year",
    "year": "year",
    "annum": "year",
    "wk": "week",
    "week": "week",
    "day": "day",
    "hr": "hour",
    "hour": "hour",
    "min": "minute",
    "minute": "minute",
    "person": "person",
    "user": "user",
    "seat": "seat",
    "night": "night",
}
_SYMBOL = r"(?P<sym>US\$|C\$|A\$|\$|€|£)"
_CODE = r"(?P<code>USD|EUR|GBP|CAD|AUD)"


def _scale_re(tag: str) -> str:
    return rf"(?:[ ]?(?P<scale{tag}>thousand|million|billion|mn|bn|[kKmMbB])\b)?"


_PER_RE = r"(?:[ ]?/[ ]?(?P<per>" + "|".join(sorted(_PER, key=len, reverse=True)) + r")\b\.?)?"
_MONEY = re.compile(
    r"(?<![\w$€£])(?:"
    rf"{_SYMBOL}[ ]?(?P<a1>{_AMOUNT}){_scale_re('1')}"
    rf"(?:[ ]*{_DASH}[ ]*(?:US\$|C\$|A\$|\$|€|£)?[ ]?(?P<b1>{_AMOUNT}))?"
    rf"|{_CODE}[ ]?(?P<a2>{_AMOUNT}){_scale_re('2')}"
    rf"|(?P<a3>{_AMOUNT}){_scale_re('3')}[ ]?(?P<code3>USD|EUR|GBP|CAD|AUD)"
    rf"){_PER_RE}(?![\w.,]\d|\w)"
)


def _money(text: str, holds: _Holds, today: date) -> str:
    def replace(m: re.Match[str]) -> str:
        unit = m.group("sym") or m.group("code") or m.group("code3")
        amount = m.group("a1") or m.group("a2") or m.group("a3")
        scale = m.group("scale1") or m.group("scale2") or m.group("scale3")
        names = _CURRENCY[unit]
        if scale is not None:
            spoken = f"{amount} {_SCALE[scale.lower()]} {names[1]}"
        elif m.group("b1") is not None:
            start = _amount(amount, names) if "." in amount else amount  # "$10-$20": 10 to 20
            spoken = f"{start} to {_amount(m.group('b1'), names)}"
        else:
            spoken = _amount(amount, names)
        if m.group("per"):
            spoken += f" per {_PER[m.group('per').lower()]}"
        return holds.hold(spoken)

    return _MONEY.sub(replace, text)


def _amount(amount: str, names: tuple[str, str, str, str]) -> str:
    """Say an amount with its unit and minor unit; the whole part keeps its digits and commas.

    "49.99" with dollars → "49 dollars and 99 cents".
    """
    whole, _, fraction = amount.partition(".")
    if len(fraction) > 2:  # a rate like $0.125 is said as a decimal
        return f"{amount} {names[1]}"
    cents = int(fraction.ljust(2, "0")) if fraction else 0
    units = int(whole.replace(",", ""))
    parts = []
    if units or not cents:
        parts.append(f"{whole} {names[0] if units == 1 else names[1]}")
    if cents:
        parts.append(f"{cents} {names[2] if cents == 1 else names[3]}")
    return " and ".join(parts)


# -- percentages, units, decades, ordinals --------------------------------------------------

_UNITS: dict[str, tuple[str, str]] = {
    "kg": ("kilogram", "kilograms"),
    "g": ("gram", "grams"),
    "mg": ("milligram", "milligrams"),
    "lb": ("pound", "pounds"),
    "lbs": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "km": ("kilometer", "kilometers"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "mi": ("mile", "miles"),
    "ft": ("foot", "feet"),
    "yd": ("yard", "yards"),
    "yds": ("yard", "yards"),
    "sq ft": ("square foot", "square feet"),
    "mph": ("mile per hour", "miles per hour"),
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kph": ("kilometer per hour", "kilometers per hour"),
    "ml": ("milliliter", "milliliters"),
    "L": ("liter", "liters"),
    "gal": ("gallon", "gallons"),
    "hr": ("hour", "hours"),
    "hrs": ("hour", "hours"),
    "min": ("minute", "minutes"),
    "mins": ("minute", "minutes"),
    "sec": ("second", "seconds"),
    "secs": ("second", "seconds"),
    "KB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "°F": ("degree Fahrenheit", "degrees Fahrenheit"),
    "°C": ("degree Celsius", "degrees Celsius"),
    "°": ("degree", "degrees"),
}
# Case matters only where a capital is another unit or word ("5G" is a network, "5 g" grams).
_CASED_UNITS = {"g", "L", "KB", "MB", "GB", "TB"}
_UNIT_BY_LOWER = {k.lower(): k for k in _UNITS if k not in _CASED_UNITS}
_UNIT_ALTERNATION = "|".join(
    re.escape(k) if k in _CASED_UNITS else f"(?i:{re.escape(k)})"
    for k in sorted(_UNITS, key=len, reverse=True)
)
_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
_UNIT = re.compile(rf"(?<![\w.,])(?P<n>{_NUMBER})[ ]?(?P<unit>{_UNIT_ALTERNATION})(?![\w°/]|\.\w)")
_PERCENT = re.compile(rf"(?<![\w.,])(?P<n>{_NUMBER})[ ]?%")
_DECADE = re.compile(r"(?<![\w.,'])'?(?P<n>\d{2}|\d{4})'?s\b")
_ORDINAL = re.compile(r"(?<![\w.,])(?P<n>\d{1,6})(?:st|nd|rd|th)\b", re.IGNORECASE)
_TWENTY_FOUR_SEVEN = re.compile(r"(?<![\w/])24/7(?![\w/])")


def _measures(text: str, holds: _Holds, today: date) -> str:
    def unit(m: re.Match[str]) -> str:
        written = m.group("unit")
        key = written if written in _UNITS else _UNIT_BY_LOWER[written.lower()]
        singular, plural = _UNITS[key]
        return f"{m.group('n')} {singular if m.group('n') == '1' else plural}"

    def decade(m: re.Match[str]) -> str:
        n = int(m.group("n"))
        # "30s" may be thirty seconds: two digits are a decade only as "'80s" or "the 80s".
        two_digit_decade = m.group().startswith("'") or m.string[: m.start()].lower().endswith(
            "the "
        )
        if n % 10 or (len(m.group("n")) == 2 and not two_digit_decade):
            return m.group()
        said = _year(n) if len(m.group("n")) == 4 else _words(n)
        return said[:-1] + "ies" if said.endswith("y") else said + "s"

    text = _PERCENT.sub(lambda m: f"{m.group('n')} percent", text)
    text = _UNIT.sub(unit, text)
    text = _TWENTY_FOUR_SEVEN.sub("24 7", text)
    text = _DECADE.sub(decade, text)
    return _ORDINAL.sub(lambda m: _ordinal(int(m.group("n"))), text)


# -- ids ------------------------------------------------------------------------------------

_KEYWORD_ID = re.compile(
    r"(?i)\b(?P<lead>(?:order|ticket|case|confirmation|reference|ref|booking|reservation"
    r"|tracking|invoice|account|claim|policy|member|membership|customer|zip|postal|pin"
    r"|extension|ext|ending[ ]in)\.?"
    r"(?P<marker>[ ]+(?:code|number|no\.|num\.|id)(?:[ ]+is)?[ ]*:?|[ ]*[:#])?[ ]*#?[ ]*)"
    r"(?P<digits>\d{3,})(?![\w]|[.,]\d)"
)
_HASH_NUMBER = re.compile(r"(?<![\w&#])#[ ]?(?P<digits>\d+)(?![\w]|[.,]\d)")
_ALPHANUMERIC = re.compile(r"(?<![\w-])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![\w-])")
_LONG_DIGITS = re.compile(r"(?<![\w.,])\d{6,}(?![\w]|[.,]\d)")
_RUN = re.compile(r"[A-Za-z]+|\d+")


def _ids(text: str, holds: _Holds, today: date) -> str:
    def keyword(m: re.Match[str]) -> str:
        # "order 300" might be a quantity; an id needs a marker ("order #300") or 4+ digits.
        if m.group("marker") is None and "#" not in m.group("lead") and len(m.group("digits")) < 4:
            return m.group()
        lead = re.sub(r"[ ]*#[ ]*$", " number ", m.group("lead"))
        return lead + holds.hold(_spell_digits(m.group("digits")))

    def hash_number(m: re.Match[str]) -> str:
        digits = m.group("digits")
        return holds.hold("number " + (_spell_digits(digits) if len(digits) >= 3 else digits))

    def alphanumeric(m: re.Match[str]) -> str:
        token = m.group()
        # Letters with fewer than three digits are names, not ids: "B12", "MP3", "COVID-19".
        if not re.search("[A-Za-z]", token) or sum(c.isdigit() for c in token) < 3:
            return token
        said = ", ".join(_spell_run(run) for run in _RUN.findall(token))
        if said.endswith("A") and m.string[m.end() : m.end() + 1] == " ":
            said += ","  # espeak-ng reads a lone "A" before a word as the article
        return holds.hold(said)

    text = _KEYWORD_ID.sub(keyword, text)
    text = _HASH_NUMBER.sub(hash_number, text)
    text = _ALPHANUMERIC.sub(alphanumeric, text)
    return _LONG_DIGITS.sub(lambda m: holds.hold(_spell_digits(m.group())), text)


def _spell_run(run: str) -> str:
    if run.isdigit():
        return _spell_digits(run)
    if len(run) >= 4 and not run.isupper():
        return run  # a word inside the id ("Boeing-737")
    letters = run.upper()
    # A comma after an inner "A": espeak-ng reads a lone "A" before another word as the article.
    return " ".join(
        c + ("," if c == "A" and i < len(letters) - 1 else "") for i, c in enumerate(letters)
    )


# -- ranges ---------------------------------------------------------------------------------

_DAY_RANGE = re.compile(rf"(?i)\b(?P<a>{_DAY_NAME})\b\.?[ ]*{_DASH}[ ]*(?P<b>{_DAY_NAME})\b")
_NUMBER_RANGE = re.compile(
    rf"(?<![\w.,-])(?P<a>{_NUMBER})[ ]*{_DASH}[ ]*(?P<b>{_NUMBER})(?![\w-]|[.,]\d)"
)


def _ranges(text: str, holds: _Holds, today: date) -> str:
    text = _DAY_RANGE.sub(
        lambda m: (
            f"{_DAY_BY_ABBREVIATION[m.group('a').lower()]} to "
            f"{_DAY_BY_ABBREVIATION[m.group('b').lower()]}"
        ),
        text,
    )

    def numbers(m: re.Match[str]) -> str:
        if re.match(r"0\d", m.group("b")):  # "555-0123" is a phone number, not a range
            return m.group()
        return f"{m.group('a')} to {m.group('b')}"

    return _NUMBER_RANGE.sub(numbers, text)


# Order matters: each rule holds what it rewrote, so a phone number is never read as a range,
# nor a time as an id.
_RULES: tuple[Callable[[str, _Holds, date], str], ...] = (
    _phones,
    _dates,
    _times,
    _money,
    _measures,
    _ids,
    _ranges,
)
