"""Runs of digits in a transcript, written or spoken, with where each digit came from.

Whisper writes a card number read aloud in many ways: "4242 4242 4242 4242", "4242-4242-…",
"four two four two …", "4 2 4 2", "forty two forty two", "double four", "oh" for zero, or a mix
of these. A run is a stretch of such digit tokens with only spaces and light punctuation between
them; each piece keeps its place in the text so that a finding can be cut out exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"(?P<num>\d+)|(?P<word>[A-Za-z]+)|(?P<sep>[\s,.\-/\u2013\u2014]+)|(?P<other>.)",
    re.DOTALL,
)
_UNITS = {
    "zero": "0",
    "nought": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
# "Oh" is zero when read among digits, and an interjection at the edge of a run set off by a
# comma ("Oh, 4242 …"); Whisper sometimes writes "for", "to" and "too" where a caller reading
# numbers said "four" and "two", which count only between other digits.
_OH = {"oh": "0", "o": "0"}
_HOMOPHONES = {"for": "4", "to": "2", "too": "2"}
_TEENS = {
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "thirteen": "13",
    "fourteen": "14",
    "fifteen": "15",
    "sixteen": "16",
    "seventeen": "17",
    "eighteen": "18",
    "nineteen": "19",
}
_TENS = {
    "twenty": "2",
    "thirty": "3",
    "forty": "4",
    "fourty": "4",
    "fifty": "5",
    "sixty": "6",
    "seventy": "7",
    "eighty": "8",
    "ninety": "9",
}
_REPEATS = {"double": 2, "triple": 3}


@dataclass(frozen=True, slots=True)
class Piece:
    """One spoken or written number inside a run ("4242", "four", "double four")."""

    start: int
    end: int
    digits: str
    kind: str = "digit"  # or "oh", or "homophone": see _OH and _HOMOPHONES


@dataclass(frozen=True, slots=True)
class DigitRun:
    """Consecutive pieces with nothing but separators between them."""

    pieces: tuple[Piece, ...]

    @property
    def start(self) -> int:
        """Where the run begins in the text."""
        return self.pieces[0].start

    @property
    def end(self) -> int:
        """Where the run ends in the text."""
        return self.pieces[-1].end

    @property
    def digits(self) -> str:
        """The run's digits, in order."""
        return "".join(p.digits for p in self.pieces)

    def windows(self, shortest: int, longest: int) -> list[str]:
        """The digits of each stretch of whole pieces with `shortest` to `longest` digits."""
        found = []
        for i in range(len(self.pieces)):
            length = 0
            for j in range(i, len(self.pieces)):
                length += len(self.pieces[j].digits)
                if length > longest:
                    break
                if length >= shortest:
                    found.append("".join(p.digits for p in self.pieces[i : j + 1]))
        return found


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


def digit_runs(text: str) -> list[DigitRun]:
    """Every run of digits in `text`, written or spoken, in order."""
    tokens = [
        _Token(m.lastgroup or "other", m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)
    ]
    runs: list[DigitRun] = []
    current: list[Piece] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.kind == "sep":
            # A sentence end or a comma may sit inside a number read in groups; a run still
            # breaks at anything else.
            i += 1
            continue
        piece, used = _piece_at(tokens, i)
        if piece is None:
            _close(text, current, runs)
            current = []
        else:
            current.append(piece)
        i += used
    _close(text, current, runs)
    return runs


def _piece_at(tokens: list[_Token], i: int) -> tuple[Piece | None, int]:
    """The piece that starts at token `i` and how many tokens it takes, or (None, 1)."""
    token = tokens[i]
    if token.kind == "num":
        return Piece(token.start, token.end, token.text), 1
    if token.kind != "word":
        return None, 1
    word = token.text.lower()
    if word in _UNITS:
        return Piece(token.start, token.end, _UNITS[word]), 1
    if word in _OH:
        return Piece(token.start, token.end, _OH[word], kind="oh"), 1
    if word in _HOMOPHONES:
        return Piece(token.start, token.end, _HOMOPHONES[word], kind="homophone"), 1
    if word in _TEENS:
        return Piece(token.start, token.end, _TEENS[word]), 1
    if word in _TENS:
        after = _next_word(tokens, i)
        if after is not None and _UNITS.get(tokens[after].text.lower(), "0") != "0":
            unit = _UNITS[tokens[after].text.lower()]
            return Piece(token.start, tokens[after].end, _TENS[word] + unit), after - i + 1
        return Piece(token.start, token.end, _TENS[word] + "0"), 1
    if word in _REPEATS:
        after = _next_word(tokens, i)
        if after is not None:
            single, _ = _piece_at(tokens, after)
            if single is not None and len(single.digits) == 1:
                digits = single.digits * _REPEATS[word]
                return Piece(token.start, single.end, digits), after - i + 1
    return None, 1


def _next_word(tokens: list[_Token], i: int) -> int | None:
    """The index of the word or number right after token `i`, past one separator."""
    j = i + 1
    if j < len(tokens) and tokens[j].kind == "sep":
        j += 1
    return j if j < len(tokens) and tokens[j].kind in ("word", "num") else None


def _close(text: str, pieces: list[Piece], runs: list[DigitRun]) -> None:
    # A homophone at either end of a run belongs to the words around it, and so does an "oh"
    # that punctuation sets apart ("Oh, 4242 …"); "oh five twenty seven" keeps its zero.
    while len(pieces) > 1 and _loose(text, pieces[-1], pieces[-2]):
        pieces.pop()
    while len(pieces) > 1 and _loose(text, pieces[0], pieces[1]):
        pieces.pop(0)
    if pieces and pieces[0].kind == "digit" or len(pieces) > 1:
        runs.append(DigitRun(tuple(pieces)))


def _loose(text: str, edge: Piece, neighbour: Piece) -> bool:
    if edge.kind == "homophone":
        return True
    between = text[min(edge.end, neighbour.end) : max(edge.start, neighbour.start)]
    return edge.kind == "oh" and not between.isspace()
