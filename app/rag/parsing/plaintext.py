"""Plain text → blocks: blank-line paragraphs, short lone or underlined lines as headings."""

from __future__ import annotations

import re
from typing import Final

from app.rag.parsing.model import LIST_ITEM, NO_TEXT, PARAGRAPH, BlockBuilder, ParsedDocument
from app.rag.parsing.text import BULLET, clean, has_words, list_item

# A plain-text line that ends like this is prose, not a heading: sentence punctuation or a
# dash (dialogue broken off), even inside closing quotes or _italic_/*emphasis* markers.
_NOT_HEADING_END: Final = re.compile(r"[.!?:;,…\-–—]['\"”’)\]_*]*$")
_DIALOGUE_START: Final = ('"', "“", "'", "‘", "—", "–", "-")
_UNDERLINE: Final = re.compile(r"^\s*(=+|-+)\s*$")


def parse_txt(text: str) -> ParsedDocument:
    """Paragraphs are separated by blank lines. A lone short line without final punctuation
    followed by a longer paragraph reads as a heading, as does a line underlined with = or -."""
    builder = BlockBuilder()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [p.strip("\n") for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    for index, paragraph in enumerate(paragraphs):
        lines = [line for line in paragraph.split("\n") if line.strip()]
        if len(lines) == 2 and _UNDERLINE.match(lines[1]) and len(lines[0].strip()) < 80:
            builder.heading(1 if lines[1].strip()[0] == "=" else 2, lines[0])
            continue
        following = paragraphs[index + 1] if index + 1 < len(paragraphs) else ""
        if len(lines) == 1 and _is_txt_heading(lines[0].strip(), following):
            builder.heading(1, lines[0])
            continue
        _txt_paragraph(lines, builder)
    return builder.build(empty=NO_TEXT)


def _is_txt_heading(line: str, following: str) -> bool:
    return (
        len(line) < 80
        and has_words(line)
        and not _NOT_HEADING_END.search(line)
        and not line.startswith(_DIALOGUE_START)
        and BULLET.match(line) is None
        and len(clean(following)) > len(line)
    )


def _txt_paragraph(lines: list[str], builder: BlockBuilder) -> None:
    """Lines of one paragraph: bulleted lines become list items, other lines wrap on."""
    current: list[str] = []
    kind = PARAGRAPH
    for line in lines:
        item = list_item(line)
        if item is not None:
            if current:
                builder.add(" ".join(current), kind)
            current, kind = [item], LIST_ITEM
        else:
            current.append(line)
    if current:
        builder.add(" ".join(current), kind)
