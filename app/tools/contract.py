"""The fields of a business system's answer that a tool passes on, and nothing else.

A tenant's system is not trusted to answer only what the README's contract says: whatever else
it sends (a stack trace, another customer's record, a prompt for the model) never reaches the
model, the transcript or the tenant. A field of the wrong type is dropped too, and text is cut.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

# A field's reader: the value to keep, or DROP.
Reader = Callable[[Any], Any]
DROP: Any = object()

# An error code as the contracts write them ("slot_taken"): never free text from the system.
_CODE = re.compile(r"[a-z][a-z0-9_]{0,39}")


def text(limit: int = 200) -> Reader:
    """A string, cut to `limit` characters."""

    def read(value: Any) -> Any:
        return value[:limit] if isinstance(value, str) else DROP

    return read


def number(value: Any) -> Any:
    """An int or a finite float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DROP
    return value if math.isfinite(value) else DROP


def flag(value: Any) -> Any:
    """A bool."""
    return value if isinstance(value, bool) else DROP


def texts(limit: int = 20, each: int = 100) -> Reader:
    """A list of strings: the first `limit`, each cut to `each` characters."""

    def read(value: Any) -> Any:
        if not isinstance(value, list):
            return DROP
        return [v[:each] for v in value if isinstance(v, str)][:limit]

    return read


def records(contract: Contract, limit: int = 50) -> Reader:
    """A list of objects, each read by `contract`: the first `limit`."""

    def read(value: Any) -> Any:
        if not isinstance(value, list):
            return DROP
        return [contract.pick(v) for v in value if isinstance(v, dict)][:limit]

    return read


def code(value: Any) -> str | None:
    """An error code ("slot_taken") when `value` is one, else None."""
    return value if isinstance(value, str) and _CODE.fullmatch(value) else None


class Contract:
    """The fields of an answer that pass, each with its reader."""

    def __init__(self, **fields: Reader) -> None:
        self.fields: Mapping[str, Reader] = dict(fields)

    def pick(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The contract's fields of `body` that are of the right type; the rest is dropped."""
        kept: dict[str, Any] = {}
        for name, read in self.fields.items():
            if name in body and (value := read(body[name])) is not DROP:
                kept[name] = value
        return kept
