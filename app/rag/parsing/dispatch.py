"""The entry point: detect an upload's kind, then hand it to that format's parser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from app.rag.parsing.archive import ArchiveLimits, verify_archive
from app.rag.parsing.detect import detect
from app.rag.parsing.docx import parse_docx
from app.rag.parsing.html import parse_html
from app.rag.parsing.markdown import parse_markdown
from app.rag.parsing.model import ParsedDocument
from app.rag.parsing.pdf import parse_pdf
from app.rag.parsing.plaintext import parse_txt

_BINARY_PARSERS: Final[dict[str, Callable[[bytes], ParsedDocument]]] = {
    "pdf": parse_pdf,
    "docx": parse_docx,
}
_TEXT_PARSERS: Final[dict[str, Callable[[str], ParsedDocument]]] = {
    "html": parse_html,
    "markdown": parse_markdown,
    "txt": parse_txt,
}


def parse_document(
    data: bytes,
    filename: str,
    content_type: str | None = None,
    *,
    archive_limits: ArchiveLimits | None = None,
) -> ParsedDocument:
    """Parse an upload into blocks; raises a `ParseError` subclass for what cannot be ingested.

    Run it in the parse worker (`parse_isolated`) for anything uploaded: the limits here bound
    what a zip container may expand to, not what a parser may allocate.
    """
    limits = archive_limits or ArchiveLimits()
    kind, text = detect(filename, content_type, data, archive_limits=limits)
    if kind == "docx":
        verify_archive(data, "DOCX", limits)
    if kind in _BINARY_PARSERS:
        return _BINARY_PARSERS[kind](data)
    assert text is not None  # detect decodes every text kind
    return _TEXT_PARSERS[kind](text)
