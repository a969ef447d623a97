"""DOCX → blocks with python-docx: Title and Heading styles (or outline levels), lists, tables."""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Iterator
from typing import Any, Final

from app.rag.parsing.model import (
    LIST_ITEM,
    NO_TEXT,
    PARAGRAPH,
    TABLE_ROW,
    BlockBuilder,
    CorruptDocument,
    ParsedDocument,
    ParseError,
    reason,
)
from app.rag.parsing.text import clean, has_words

_HEADING_STYLE: Final = re.compile(r"^heading\s*([1-9])$", re.I)


def parse_docx(data: bytes) -> ParsedDocument:
    import docx

    builder = BlockBuilder()
    try:
        document = docx.Document(io.BytesIO(data))
        builder.set_title(_docx_title(document))
        for element in _docx_body_items(document.element.body):
            _docx_item(element, document, builder)
    except ParseError:
        raise
    # python-docx surfaces damage as KeyError, lxml syntax errors, PackageNotFoundError...
    except Exception as exc:
        raise CorruptDocument(f"the DOCX could not be read: {reason(exc)}") from exc
    return builder.build(empty=NO_TEXT)


@functools.cache
def _qn(tag: str) -> str:
    from docx.oxml.ns import qn

    return str(qn(tag))


def _docx_body_items(body: Any) -> Iterator[Any]:
    """Paragraphs and tables in order, looking inside content controls (cover pages, forms)."""
    containers = (_qn("w:sdt"), _qn("w:customXml"), _qn("w:sdtContent"))
    stack = list(reversed(list(body.iterchildren())))
    while stack:
        element = stack.pop()
        if element.tag in (_qn("w:p"), _qn("w:tbl")):
            yield element
        elif element.tag in containers:
            stack.extend(reversed(list(element.iterchildren())))


def _docx_item(element: Any, document: Any, builder: BlockBuilder) -> None:
    from docx.text.paragraph import Paragraph

    if element.tag == _qn("w:tbl"):
        for row in element.findall(_qn("w:tr")):
            cells = [_docx_cell_text(cell, document) for cell in row.findall(_qn("w:tc"))]
            builder.add(" | ".join(cell for cell in cells if cell), TABLE_ROW)
        return
    paragraph = Paragraph(element, document)
    style = _docx_style_name(paragraph)
    if style.lower().startswith("toc"):  # the table of contents repeats the headings
        return
    level = _docx_heading_level(paragraph, style)
    if level is not None:
        builder.heading(level, paragraph.text)
        return
    listed = style.lower().startswith("list") or element.find(f".//{_qn('w:numPr')}") is not None
    builder.add(paragraph.text, LIST_ITEM if listed else PARAGRAPH)


def _docx_cell_text(cell: Any, document: Any) -> str:
    from docx.text.paragraph import Paragraph

    return clean(" ".join(Paragraph(p, document).text for p in cell.iter(_qn("w:p"))))


def _docx_style_name(paragraph: Any) -> str:
    try:
        style = paragraph.style
    except Exception:  # a dangling style id: read it as body text
        return ""
    return str(style.name or "") if style is not None else ""


def _docx_heading_level(paragraph: Any, style: str) -> int | None:
    """Title is level 0, "Heading N" level N; an explicit outline level also counts."""
    if style.lower() == "title":
        return 0
    match = _HEADING_STYLE.match(style)
    if match:
        return int(match.group(1))
    outline = paragraph._p.find(f"{_qn('w:pPr')}/{_qn('w:outlineLvl')}")
    if outline is not None:
        value = outline.get(_qn("w:val"), "")
        if value.isdigit() and int(value) < 9:  # 9 means "body text"
            return int(value) + 1
    return None


def _docx_title(document: Any) -> str | None:
    """The Title-styled paragraph near the top, else the file's title property."""
    for paragraph in document.paragraphs[:20]:
        if _docx_style_name(paragraph).lower() == "title" and has_words(paragraph.text):
            return str(paragraph.text)
    try:
        title = document.core_properties.title
    except Exception:  # damaged docProps cost the title, not the document
        return None
    return title if isinstance(title, str) else None
