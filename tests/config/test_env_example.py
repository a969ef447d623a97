"""`.env.example` lists every setting by its env name, nothing else, and shows the defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.settings import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
# An entry is "NAME=value", or "# NAME=" for a setting left unset.
ENTRY = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=")
FIELDS = {name.upper() for name in Settings.model_fields}


def listed() -> list[str]:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    return [match.group(1) for line in lines if (match := ENTRY.match(line))]


def test_every_setting_is_listed_once_and_nothing_else() -> None:
    names = listed()
    assert sorted(FIELDS - set(names)) == [], "settings missing from .env.example"
    assert sorted(set(names) - FIELDS) == [], ".env.example lists names that are not settings"
    assert sorted({name for name in names if names.count(name) > 1}) == [], "listed twice"


def test_its_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # Copied to .env as it is, the example must change nothing.
    for name in FIELDS:
        monkeypatch.delenv(name, raising=False)
    assert Settings(_env_file=ENV_EXAMPLE) == Settings(_env_file=None)
