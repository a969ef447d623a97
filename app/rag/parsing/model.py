"""What parsing produces (blocks under heading paths), how it refuses, and the shared builder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from app.rag.parsing.text import clean, clean_lines, has_words

PARAGRAPH: Final = "paragraph"
LIST_ITEM: Final = "list_item"
TABLE_ROW: Final = "table_row"
BLOCK_KINDS: Final = frozenset({PARAGRAPH, LIST_ITEM, TABLE_ROW})

NO_TEXT: Final = "no extractable text: the document has no words in it"


@dataclass(frozen=True, slots=True)
class Block:
    """One passage of body text: a paragraph, a list item or a table row ("a | b | c").

    `headings` is the heading path above it, outermost first, e.g. ("Returns", "Refund window").
    """

    text: str
    headings: tuple[str, ...]
    kind: str = PARAGRAPH


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A document's blocks in reading order; `pages` is known for PDFs only."""

    blocks: list[Block]
    title: str | None
    pages: int | None


class ParseError(ValueError):
    """An upload that cannot be ingested; the message is meant for the person who uploaded it."""


class UnsupportedType(ParseError):
    """A kind of file Velox does not read (images, spreadsheets, archives, ...)."""


class CorruptDocument(ParseError):
    """A supported kind whose bytes cannot be read: damaged, truncated, encrypted, not text."""


class EmptyDocument(ParseError):
    """A readable file with no text to index (a scanned PDF, an empty file)."""


def reason(exc: BaseException) -> str:
    """An exception's message for a refusal, its type's name when it has none."""
    text = str(exc).strip()
    return text if text else type(exc).__name__


class BlockBuilder:
    """Collects blocks under a heading stack; shared by every format."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.title: str | None = None
        self._stack: list[tuple[int, str]] = []
        self._path: tuple[str, ...] = ()
        self._first_heading: str | None = None

    def heading(self, level: int, text: str) -> None:
        text = clean(text)
        if not has_words(text):
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._path = tuple(t for _, t in self._stack)
        if self._first_heading is None:
            self._first_heading = text

    def add(self, text: str, kind: str = PARAGRAPH, *, keep_lines: bool = False) -> None:
        text = clean_lines(text) if keep_lines else clean(text)
        if has_words(text):  # a lone "---" or "•" is layout, not content
            self.blocks.append(Block(text, self._path, kind))

    def set_title(self, text: str | None) -> None:
        cleaned = clean(text or "")
        if self.title is None and has_words(cleaned):
            self.title = cleaned

    def build(self, *, pages: int | None = None, empty: str) -> ParsedDocument:
        if not self.blocks:
            raise EmptyDocument(empty)
        return ParsedDocument(self.blocks, self.title or self._first_heading, pages)
