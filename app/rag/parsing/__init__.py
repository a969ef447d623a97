"""Uploaded file → structured text: the first stage of knowledge-base ingestion.

Owns recognising what an upload is (`detect_kind`, in `detect`), refusing what cannot be
ingested with a message a customer can act on (`ParseError` and its subclasses, in `model`),
and turning PDF, DOCX, HTML, Markdown and plain text into a flat list of `Block`s, each carrying
the heading path above it: one module per format (`pdf`, `docx`, `html`, `markdown`,
`plaintext`) and `parse_document` choosing among them (`dispatch`). Headings are never blocks
of their own: they live in `Block.headings`, which is what lets the chunker keep sections apart
and label every chunk with where it came from.

Pure functions over the bytes given: no files, no network, no database. Zip containers are
judged before they are expanded (`archive`), and uploads are parsed in a worker process with
memory and time limits (`worker.parse_isolated`), never in the process serving calls.
"""

from app.rag.parsing.archive import ArchiveLimits, UnsafeArchive
from app.rag.parsing.detect import SUPPORTED, FileFormat, detect_kind
from app.rag.parsing.dispatch import parse_document
from app.rag.parsing.model import (
    BLOCK_KINDS,
    LIST_ITEM,
    PARAGRAPH,
    TABLE_ROW,
    Block,
    CorruptDocument,
    EmptyDocument,
    ParsedDocument,
    ParseError,
    UnsupportedType,
)
from app.rag.parsing.worker import ParseLimits, ParseWorkerFailed, parse_isolated

__all__ = [
    "ArchiveLimits",
    "BLOCK_KINDS",
    "LIST_ITEM",
    "PARAGRAPH",
    "SUPPORTED",
    "TABLE_ROW",
    "Block",
    "CorruptDocument",
    "EmptyDocument",
    "FileFormat",
    "ParseError",
    "ParseLimits",
    "ParseWorkerFailed",
    "ParsedDocument",
    "UnsafeArchive",
    "UnsupportedType",
    "detect_kind",
    "parse_document",
    "parse_isolated",
]
