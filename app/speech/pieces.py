"""Where speech is cut: the one definition of a sentence and a clause end, used to cut a streamed
reply into pieces as they complete (so speech starts before the reply is done) and to cut a
long sentence into clauses before a voice renders it (so its first audio comes sooner)."""

from __future__ import annotations

import re

# A sentence ends at . ! ? followed by whitespace; "Dr. Smith" and "3.5" survive because the
# former is listed and the latter has no space after the dot.
_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
# A comma, semicolon or colon followed by a space: "1,000" and "10:30" stay whole.
_CLAUSE = re.compile(r"(?<=[,;:])\s+")
# Sentences longer than this are cut at clause boundaries: a local voice renders a whole piece
# before its first sample exists, so a 25-word sentence would hold back first audio by ~0.5 s.
CLAUSE_SPLIT_MIN_WORDS = 12
# A clause shorter than this is glued to the next one; very short pieces sound clipped.
MIN_CLAUSE_WORDS = 3
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
        cut = _sentence_end(self._buffer)
        if cut is None:
            return None
        candidate, self._buffer = self._buffer[: cut[0]].strip(), self._buffer[cut[1] :]
        return candidate or None

    def _take_first_clause(self) -> str | None:
        if self._emitted:
            return None
        for match in _CLAUSE.finditer(self._buffer):
            candidate = self._buffer[: match.start()].strip()
            if len(candidate.split()) >= self._first_clause_words:
                self._buffer = self._buffer[match.end() :]
                return candidate
        return None


def split_for_speech(text: str) -> list[str]:
    """Split text into sentences, and long sentences into clauses, for earlier first audio."""
    splitter = SentenceSplitter(first_clause_words=10**6)  # whole sentences only
    pieces: list[str] = []
    for sentence in [*splitter.push(text.strip() + " "), *splitter.flush()]:
        if len(sentence.split()) <= CLAUSE_SPLIT_MIN_WORDS:
            pieces.append(sentence)
            continue
        clauses: list[str] = []
        pending = ""
        for clause in _CLAUSE.split(sentence):
            pending = f"{pending} {clause}".strip()
            if len(pending.split()) >= MIN_CLAUSE_WORDS:
                clauses.append(pending)
                pending = ""
        if pending and clauses:
            clauses[-1] = f"{clauses[-1]} {pending}"
        elif pending:
            clauses.append(pending)
        pieces.extend(clauses)
    return pieces


def _sentence_end(text: str) -> tuple[int, int] | None:
    """Where the first sentence of `text` ends and the next begins; an abbreviation's dot
    ("Dr. Smith") ends nothing."""
    for match in _END.finditer(text):
        words = text[: match.start()].split()
        if words and words[-1].lower() in _ABBREVIATIONS:
            continue
        return match.start(), match.end()
    return None
