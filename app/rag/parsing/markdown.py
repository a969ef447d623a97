"""Markdown → blocks with markdown-it-py (CommonMark plus GFM tables and strikethrough)."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Final

from app.rag.parsing.model import (
    LIST_ITEM,
    NO_TEXT,
    PARAGRAPH,
    TABLE_ROW,
    BlockBuilder,
    ParsedDocument,
)
from app.rag.parsing.text import clean

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

_TASK_BOX: Final = re.compile(r"^\[[ xX]\][ \t]+")
_HEADING_ID: Final = re.compile(r"\s*\{#[^}]*\}\s*$")
# Footnote references ("[^1]") are not CommonMark: without a plugin they stay in the text.
_FOOTNOTE_REF: Final = re.compile(r"\[\^[^\]]+\]")
_HTML_COMMENT: Final = re.compile(r"<!--.*?-->", re.S)
_HTML_TAG: Final = re.compile(r"</?[A-Za-z][^>]*>")


@functools.cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def parse_markdown(text: str) -> ParsedDocument:
    """Headings set the path; paragraphs, list items, table rows and code become blocks."""
    builder = BlockBuilder()
    lines = text.splitlines()
    body = _skip_front_matter(lines, builder)
    _MarkdownWalker(builder).walk(_parser().parse("\n".join(lines[body:])))
    return builder.build(empty=NO_TEXT)


def _skip_front_matter(lines: list[str], builder: BlockBuilder) -> int:
    """YAML front matter is metadata, not Markdown: only its title is kept. Returns the index
    of the first line of the body."""
    if not lines or lines[0].strip() != "---":
        return 0
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), 0)
    for line in lines[1:end]:
        if line.lower().startswith("title:"):
            builder.set_title(line[6:].strip().strip("'\""))
    return end + 1 if end else 0


class _MarkdownWalker:
    """Over markdown-it's flat token stream, remembering which heading, list item or table row
    the next inline run belongs to."""

    def __init__(self, builder: BlockBuilder) -> None:
        self.builder = builder
        self.heading_level: int | None = None
        # One entry per open list item: its marker ("2. ") until its first paragraph takes it.
        self.items: list[str | None] = []
        self.row: list[str] | None = None

    def walk(self, tokens: list[Token]) -> None:
        for token in tokens:
            kind = token.type
            if kind == "heading_open":
                self.heading_level = int(token.tag[1:])
            elif kind == "heading_close":
                self.heading_level = None
            elif kind == "list_item_open":
                # An ordered item keeps its number, which carries order ("step 3").
                self.items.append(f"{token.info}{token.markup} " if token.info else "")
            elif kind == "list_item_close":
                self.items.pop()
            elif kind == "tr_open":
                self.row = []
            elif kind == "tr_close" and self.row is not None:
                self.builder.add(" | ".join(cell for cell in self.row if cell), TABLE_ROW)
                self.row = None
            elif kind in ("fence", "code_block"):
                self.builder.add(token.content, keep_lines=True)
            elif kind == "html_block":
                self.builder.add(_HTML_TAG.sub("", _HTML_COMMENT.sub("", token.content)))
            elif kind == "inline":
                self._inline(_inline_text(token))

    def _inline(self, text: str) -> None:
        if self.heading_level is not None:
            self.builder.heading(self.heading_level, _HEADING_ID.sub("", text))
        elif self.row is not None:
            self.row.append(clean(text))
        elif self.items:
            marker = self.items[-1]
            if marker is not None:  # the item's first paragraph
                text = marker + _TASK_BOX.sub("", text)
                self.items[-1] = None
            self.builder.add(text, LIST_ITEM)
        else:
            self.builder.add(text, PARAGRAPH)


def _inline_text(token: Token) -> str:
    """The words of an inline run: markup, link targets and raw HTML tags dropped, an image
    read as its alt text, line breaks as spaces."""
    parts: list[str] = []
    for child in token.children or []:
        if child.type == "text":
            parts.append(_FOOTNOTE_REF.sub("", child.content))
        elif child.type == "code_inline":
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(_inline_text(child))
    return "".join(parts)
