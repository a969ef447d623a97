"""Parsed blocks → token-sized, section-aware chunks: the second stage of ingestion.

Owns how a document is cut for embedding (all-MiniLM-L6-v2 reads at most 256 wordpieces) and
for a small phone-call LLM to read: self-contained passages of ~100-200 tokens that never mix
two sections, keep paragraphs, list items and table rows whole where they fit, and repeat the
last sentences of the previous chunk so an answer split across a cut is still found.

The heading path is not part of `Chunk.text` and does not count against `max_tokens`: the
indexer stores it beside the text (and feeds both to full-text search and the embedder).

Cost: `count_tokens` runs once per sentence plus once per finished chunk, never over growing
prefixes, so chunking stays linear in the document's length.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from app.rag.parsing import LIST_ITEM, TABLE_ROW, Block, ParsedDocument

HEADING_SEPARATOR: Final = " › "

TokenCounter = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One retrievable passage; `position` is its index in document order (0..n-1)."""

    position: int
    heading: str | None  # the heading path joined with " › ", None above the first heading
    text: str
    token_count: int  # count_tokens(text)


def approx_tokens(text: str) -> int:
    """≈ wordpieces for English prose (words × 1.3, rounded up), for callers without a
    tokenizer. Integer arithmetic: 10 × 1.3 is 13.000000000000002 in floats."""
    return (len(text.split()) * 13 + 9) // 10


def chunk_document(
    doc: ParsedDocument,
    *,
    count_tokens: TokenCounter,
    max_tokens: int = 200,
    overlap_tokens: int = 40,
    min_tokens: int = 20,
) -> list[Chunk]:
    """Cut `doc` into chunks of at most `max_tokens` (by `count_tokens`, heading excluded).

    Consecutive blocks of one section are packed together; a block that would not fit in what
    is left of a chunk starts the next one if it fits whole there. Long blocks are cut at
    sentence ends, a sentence longer than a chunk at word boundaries. Each chunk after the
    first of its section opens with about `overlap_tokens` of the previous chunk's last
    sentences (never more than half of `max_tokens`). A section's trailing piece smaller than
    `min_tokens` joins the previous chunk when that fits, or takes sentences from it.
    """
    limits = _Limits.of(max_tokens, overlap_tokens, min_tokens)
    chunks: list[Chunk] = []
    for headings, section in itertools.groupby(doc.blocks, key=lambda block: block.headings):
        heading = HEADING_SEPARATOR.join(headings) or None
        for text, tokens in _chunk_section(list(section), count_tokens, limits):
            chunks.append(Chunk(len(chunks), heading, text, tokens))
    return chunks


@dataclass(frozen=True, slots=True)
class _Limits:
    max: int
    overlap: int  # the overlap aimed for
    stretch: int  # a single last sentence up to this size may still be repeated
    min: int

    @classmethod
    def of(cls, max_tokens: int, overlap_tokens: int, min_tokens: int) -> _Limits:
        if max_tokens < 1 or overlap_tokens < 0 or min_tokens < 0:
            raise ValueError("max_tokens must be ≥ 1, overlap_tokens and min_tokens ≥ 0")
        half = max_tokens // 2
        overlap = min(overlap_tokens, half)
        return cls(max_tokens, overlap, min(overlap_tokens * 3 // 2, half), min_tokens)


@dataclass(frozen=True, slots=True)
class _Piece:
    """A sentence (or part of an over-long one), the unit chunks are packed from."""

    text: str
    tokens: int
    block: int  # index of its block within the section
    kind: str
    joiner: str  # what separated it from the previous piece of the same block


# ---------------------------------------------------------------------------------------------
# Sections


def _chunk_section(
    blocks: list[Block], count: TokenCounter, limits: _Limits
) -> list[tuple[str, int]]:
    pieces: list[_Piece] = []
    for index, block in enumerate(blocks):
        pieces += _block_pieces(block, index, count, limits)
    if not pieces:
        return []
    sums = list(itertools.accumulate((p.tokens for p in pieces), initial=0))
    starts = _pack(pieces, sums, limits)
    _settle_tail(starts, pieces, sums, count, limits)
    out: list[tuple[str, int]] = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(pieces)
        floor = starts[number - 1] if number else start
        first = _overlap_start(pieces, start, floor, sums[end] - sums[start], limits)
        out += _finish(pieces, first, start, end, count, limits)
    return out


def _pack(pieces: Sequence[_Piece], sums: list[int], limits: _Limits) -> list[int]:
    """Greedy packing; returns the index of the first new piece of each chunk."""
    block_end = _block_ends(pieces)
    starts: list[int] = []
    index = 0
    while index < len(pieces):
        # Room for the overlap is taken only after the block that opens this chunk fits whole.
        opening = sums[block_end[index]] - sums[index]
        needed = opening if opening <= limits.max else pieces[index].tokens
        floor = starts[-1] if starts else index
        first = _overlap_start(pieces, index, floor, needed, limits)
        room = limits.max - (sums[index] - sums[first])
        starts.append(index)
        used = pieces[index].tokens
        index += 1
        while index < len(pieces):
            if pieces[index].block != pieces[index - 1].block:
                whole = sums[block_end[index]] - sums[index]
                if used + whole > room and whole <= limits.max and used >= limits.min:
                    break  # keep the next block in one piece: it opens the next chunk
            if used + pieces[index].tokens > room:
                break
            used += pieces[index].tokens
            index += 1
    return starts


def _block_ends(pieces: Sequence[_Piece]) -> list[int]:
    """For each piece, the index just past the last piece of its block."""
    ends = [0] * len(pieces)
    end = len(pieces)
    for index in range(len(pieces) - 1, -1, -1):
        if index + 1 < len(pieces) and pieces[index + 1].block != pieces[index].block:
            end = index + 1
        ends[index] = end
    return ends


def _overlap_start(
    pieces: Sequence[_Piece], start: int, floor: int, new_tokens: int, limits: _Limits
) -> int:
    """Where a chunk whose new text is pieces[start:…] begins once the overlap is added: the
    previous chunk's last sentences, within the overlap and the chunk's own room."""
    room = min(limits.overlap, limits.max - new_tokens)
    first, taken = start, 0
    while first > floor and taken + pieces[first - 1].tokens <= room:
        first -= 1
        taken += pieces[first].tokens
    if first == start > floor:
        # One sentence a little longer than the overlap beats no overlap at all.
        last = pieces[start - 1].tokens
        if last <= limits.stretch and last + new_tokens <= limits.max:
            first -= 1
    return first


def _settle_tail(
    starts: list[int],
    pieces: Sequence[_Piece],
    sums: list[int],
    count: TokenCounter,
    limits: _Limits,
) -> None:
    """A tiny last chunk joins the one before when the result fits (measured for real: summed
    sentence counts overestimate for counters like `approx_tokens`); otherwise it takes
    sentences from it until it is no longer tiny, as long as that one stays big enough."""
    if len(starts) < 2 or sums[-1] - sums[starts[-1]] >= limits.min:
        return
    previous, last = starts[-2], starts[-1]
    floor = starts[-3] if len(starts) > 2 else previous
    first = _overlap_start(pieces, previous, floor, sums[-1] - sums[previous], limits)
    if count(_join(pieces[first:])) <= limits.max:
        starts.pop()
        return
    for cut in range(last - 1, previous, -1):
        tail = sums[-1] - sums[cut]
        if tail > limits.max or sums[cut] - sums[previous] < limits.min:
            return
        if tail >= limits.min:
            starts[-1] = cut
            return


def _finish(
    pieces: Sequence[_Piece],
    first: int,
    start: int,
    end: int,
    count: TokenCounter,
    limits: _Limits,
) -> list[tuple[str, int]]:
    """The chunk's text and real count. Summed counts bound the real one for additive
    counters; for any other, drop the overlap, then halve, until every chunk fits."""
    text = _join(pieces[first:end])
    tokens = count(text)
    if tokens <= limits.max or end - first == 1:
        return [(text, tokens)]
    if first < start:
        return _finish(pieces, start, start, end, count, limits)
    middle = (start + end) // 2
    return _finish(pieces, start, start, middle, count, limits) + _finish(
        pieces, middle, middle, end, count, limits
    )


def _join(pieces: Sequence[_Piece]) -> str:
    """Sentences of a block rejoin as they were; list items and table rows go one per line;
    other blocks are separated by a blank line."""
    parts: list[str] = []
    for index, piece in enumerate(pieces):
        if index:
            before = pieces[index - 1]
            if before.block == piece.block:
                parts.append(piece.joiner)
            elif before.kind == piece.kind and piece.kind in (LIST_ITEM, TABLE_ROW):
                parts.append("\n")
            else:
                parts.append("\n\n")
        parts.append(piece.text)
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# Blocks → pieces

# A sentence ends at . ! ? or … (closing quotes and brackets stay with it) before whitespace
# and a capital, a digit or an opening quote; a newline (code, addresses) always ends a piece.
_GAP: Final = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’»)\]]))[ \t]+(?=\S)|[ \t]*\n\s*")
_ABBREVIATIONS: Final = frozenset(
    "mr mrs ms dr prof sr jr st vs etc inc ltd co corp no nos approx dept est fig tel ext "
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun".split()
)


def _block_pieces(block: Block, index: int, count: TokenCounter, limits: _Limits) -> list[_Piece]:
    pieces: list[_Piece] = []
    joiner = ""
    for sentence, following in _sentences(block.text):
        tokens = count(sentence)
        if tokens <= limits.max:
            pieces.append(_Piece(sentence, tokens, index, block.kind, joiner))
        else:
            pieces += _split_long(sentence, index, block.kind, joiner, count, limits)
        joiner = following
    return pieces


def _sentences(text: str) -> list[tuple[str, str]]:
    """(sentence, the separator that followed it: " " or "\\n")."""
    out: list[tuple[str, str]] = []
    begin = 0
    for gap in _GAP.finditer(text):
        sentence = text[begin : gap.start()]
        newline = "\n" in gap.group()
        if not newline and not _ends_sentence(sentence, text[gap.end() : gap.end() + 8]):
            continue
        if sentence.strip():
            out.append((sentence.strip(), "\n" if newline else " "))
        begin = gap.end()
    if text[begin:].strip():
        out.append((text[begin:].strip(), " "))
    return out


def _ends_sentence(sentence: str, rest: str) -> bool:
    following = rest.lstrip("\"'“‘«([")[:1]
    if not (following.isupper() or following.isdigit()):
        return False
    words = sentence.rsplit(None, 1)
    if not words:
        return False
    word = words[-1].rstrip("\"'”’»)]").rstrip(".").lower()
    # "Dr. Smith", "J. Smith", "U.S. Army": a known abbreviation, an initial, inner dots.
    return word not in _ABBREVIATIONS and len(word) > 1 and "." not in word


def _split_long(
    sentence: str, index: int, kind: str, joiner: str, count: TokenCounter, limits: _Limits
) -> list[_Piece]:
    """A sentence longer than a chunk, cut at word boundaries into pieces small enough to
    pack finely and to serve as overlap."""
    budget = max(limits.overlap, limits.max // 8, 1)
    pieces: list[_Piece] = []
    words: list[str] = []
    used = 0

    def close() -> None:
        nonlocal words, used
        if words:
            text = " ".join(words)
            pieces.extend(
                _verified(text, index, kind, joiner if not pieces else " ", count, budget)
            )
        words, used = [], 0

    for word in sentence.split():
        tokens = count(word)
        if tokens > budget:
            close()
            pieces.extend(_split_word(word, index, kind, " " if pieces else joiner, count, budget))
            continue
        if used + tokens > budget:
            close()
        words.append(word)
        used += tokens
    close()
    return pieces


def _verified(
    text: str, index: int, kind: str, joiner: str, count: TokenCounter, budget: int
) -> list[_Piece]:
    """Summed word counts are a bound, not the count: check the piece, halve it if over."""
    tokens = count(text)
    words = text.split()
    if tokens <= budget or len(words) == 1:
        return [_Piece(text, tokens, index, kind, joiner)]
    middle = len(words) // 2
    head = _verified(" ".join(words[:middle]), index, kind, joiner, count, budget)
    return head + _verified(" ".join(words[middle:]), index, kind, " ", count, budget)


def _split_word(
    word: str, index: int, kind: str, joiner: str, count: TokenCounter, budget: int
) -> list[_Piece]:
    """A single "word" worth more tokens than a piece (a long URL, base64): cut by characters,
    rejoined without spaces."""
    pieces: list[_Piece] = []
    rest = word
    while rest:
        size = max(1, len(rest) * budget // max(count(rest), 1))
        while size > 1 and count(rest[:size]) > budget:
            size //= 2
        pieces.append(_Piece(rest[:size], count(rest[:size]), index, kind, joiner))
        rest, joiner = rest[size:], ""
    return pieces
