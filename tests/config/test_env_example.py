"""`.env.example` lists every setting by its env name, under its group's section, nothing else,
and shows the defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.settings import Settings, env_names

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
# An entry is "NAME=value", or "# NAME=" for a setting left unset; a section "# --- Name ---".
ENTRY = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=")
SECTION = re.compile(r"^# --- (\w+)")
FIELDS = env_names()


def listed() -> list[tuple[str, str]]:
    """(section, name) for every entry, in order."""
    entries: list[tuple[str, str]] = []
    section = ""
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if heading := SECTION.match(line):
            section = heading.group(1).lower()
        elif entry := ENTRY.match(line):
            entries.append((section, entry.group(1)))
    return entries


def test_every_setting_is_listed_once_and_nothing_else() -> None:
    names = [name for _, name in listed()]
    assert sorted(set(FIELDS) - set(names)) == [], "settings missing from .env.example"
    assert sorted(set(names) - set(FIELDS)) == [], ".env.example lists names that are not settings"
    assert sorted({name for name in names if names.count(name) > 1}) == [], "listed twice"


def test_each_setting_is_under_its_groups_section() -> None:
    misplaced = [(name, section) for section, name in listed() if FIELDS.get(name) != section]
    assert misplaced == [], "sections of .env.example follow the groups of app/settings.py"


def test_its_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # Copied to .env as it is, the example must change nothing.
    for name in FIELDS:
        monkeypatch.delenv(name, raising=False)
    assert Settings(_env_file=ENV_EXAMPLE) == Settings(_env_file=None)
