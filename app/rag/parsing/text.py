"""Text normalisation shared by every format's parser: cleaning, words, list items, wrapping."""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# Soft hyphens and zero-width characters only ever split words that search must see whole.
_INVISIBLE: Final = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
SPACES: Final = re.compile(r"\s+")
_WORDY: Final = re.compile(r"[^\W_]")

# "• item", "- item", "1. item", "a) item": the bullet glyph is dropped, a number kept because
# it carries order ("step 3"). Capital letters are left out: "A. Smith" starts many a line.
BULLET: Final = re.compile(r"^\s*[•◦▪▫‣⁃●○■□–—*+\-·]\s+")
_NUMBERED: Final = re.compile(r"^\s*(?:\d{1,3}|[a-z])[.)]\s+\S")


def clean(text: str) -> str:
    """NFKC (ligatures such as "ﬁ" from PDFs become "fi"), invisibles dropped, whitespace
    collapsed to single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return SPACES.sub(" ", text).strip()


def clean_lines(text: str) -> str:
    """Like `clean` but keeps line structure (code): indentation stays, trailing space and
    surrounding blank lines go."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).replace("\t", "    ")
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(lines).strip("\n")


def has_words(text: str) -> bool:
    """Whether the text holds a letter or digit (a lone "---" or "•" is layout, not content)."""
    return _WORDY.search(text) is not None


def list_item(line: str) -> str | None:
    """The item's text when the line starts a list item, else None."""
    bullet = BULLET.match(line)
    if bullet:
        return line[bullet.end() :]
    if _NUMBERED.match(line):
        return line.strip()
    return None


def join_wrapped(lines: list[str]) -> str:
    """Wrapped lines back into one paragraph, re-joining words hyphenated across lines."""
    parts: list[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        last = parts[-1] if parts else ""
        if (
            len(last) >= 2
            and last[-1] in "-\u00ad\u2010"
            and last[-2].isalpha()
            and line[0].islower()
        ):
            parts[-1] = last[:-1] + line
        else:
            parts.append(line)
    return " ".join(parts)
