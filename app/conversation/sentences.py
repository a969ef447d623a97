"""Cuts a streamed reply into speakable pieces so speech can start before the reply is done."""

from __future__ import annotations

import re

# A sentence ends at . ! ? followed by whitespace; "Dr. Smith" and "3.5" survive because the
# former is listed and the latter has no space after the dot.
_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_CLAUSE = re.compile(r"(?<=[,;:])\s+")
_ABBREVIATIONS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "st.", "vs.", "e.g.", "i.e.", "etc.", "a.m.", "p.m."}
)


class SentenceSplitter:
    """Feed text deltas, get complete sentences back as soon as they are complete.

    The first piece of a reply may be cut at a clause boundary (a comma) once it has
    `first_clause_words` words, because time to first audio matters more there than prosody.
    """

    def __init__(self, *, first_clause_words: int = 4) -> None:
        self._buffer = ""
        self._first_clause_words = first_clause_words
        self._emitted = 0

    def push(self, delta: str) -> list[str]:
        """Add streamed text; return the pieces it completed."""
        self._buffer += delta
        out: list[str] = []
        while True:
            piece = self._take_sentence() or self._take_first_clause()
            if piece is None:
                return out
            out.append(piece)
            self._emitted += 1

    def flush(self) -> list[str]:
        """Return whatever is left at the end of the reply."""
        rest = self._buffer.strip()
        self._buffer = ""
        return [rest] if rest else []

    def _take_sentence(self) -> str | None:
        for match in _END.finditer(self._buffer):
            candidate = self._buffer[: match.start()].strip()
            last_word = candidate.split()[-1].lower() if candidate.split() else ""
            if last_word in _ABBREVIATIONS:
                continue
            self._buffer = self._buffer[match.end() :]
            return candidate or None
        return None

    def _take_first_clause(self) -> str | None:
        if self._emitted:
            return None
        for match in _CLAUSE.finditer(self._buffer):
            candidate = self._buffer[: match.start()].strip()
            if len(candidate.split()) >= self._first_clause_words:
                self._buffer = self._buffer[match.end() :]
                return candidate
        return None
