"""Uploaded file → structured text: the first stage of knowledge-base ingestion.

Owns recognising what an upload is (`detect_kind`), refusing what cannot be ingested with a
message a customer can act on (`ParseError` and its subclasses), and turning PDF, DOCX, HTML,
Markdown and plain text into a flat list of `Block`s, each carrying the heading path above it.
Headings are never blocks of their own: they live in `Block.headings`, which is what lets the
chunker keep sections apart and label every chunk with where it came from.

Pure functions over the bytes given: no files, no network, no database.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import re
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

log = logging.getLogger(__name__)

PARAGRAPH: Final = "paragraph"
LIST_ITEM: Final = "list_item"
TABLE_ROW: Final = "table_row"
BLOCK_KINDS: Final = frozenset({PARAGRAPH, LIST_ITEM, TABLE_ROW})


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


@dataclass(frozen=True, slots=True)
class FileFormat:
    """What an upload form should accept for one kind: extensions carry their dot."""

    label: str
    extensions: frozenset[str]
    mime_types: frozenset[str]


SUPPORTED: Final[Mapping[str, FileFormat]] = MappingProxyType(
    {
        "pdf": FileFormat(
            "PDF", frozenset({".pdf"}), frozenset({"application/pdf", "application/x-pdf"})
        ),
        "docx": FileFormat(
            "DOCX",
            frozenset({".docx", ".docm"}),
            frozenset(
                {
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    "application/vnd.ms-word.document.macroenabled.12",
                }
            ),
        ),
        "txt": FileFormat("text", frozenset({".txt", ".text"}), frozenset({"text/plain"})),
        "markdown": FileFormat(
            "Markdown",
            frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"}),
            frozenset({"text/markdown", "text/x-markdown"}),
        ),
        "html": FileFormat(
            "HTML",
            frozenset({".html", ".htm", ".xhtml"}),
            frozenset({"text/html", "application/xhtml+xml"}),
        ),
    }
)

_ACCEPTED: Final = "upload PDF, DOCX, TXT, Markdown or HTML"


class ParseError(ValueError):
    """An upload that cannot be ingested; the message is meant for the person who uploaded it."""


class UnsupportedType(ParseError):
    """A kind of file Velox does not read (images, spreadsheets, archives, ...)."""


class CorruptDocument(ParseError):
    """A supported kind whose bytes cannot be read: damaged, truncated, encrypted, not text."""


class EmptyDocument(ParseError):
    """A readable file with no text to index (a scanned PDF, an empty file)."""


# ---------------------------------------------------------------------------------------------
# Detection


# Formats people upload by mistake, told apart by their first bytes so that a misnamed file
# gets a message about what it really is.
_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/msword (a legacy .doc/.xls/.ppt file)"),
    (b"{\\rtf", "application/rtf"),
    (b"\x1f\x8b", "application/gzip"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x7fELF", "application/x-executable"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"%!PS", "application/postscript"),
)
_RIFF: Final = {b"WAVE": "audio/wav", b"WEBP": "image/webp", b"AVI ": "video/x-msvideo"}
_ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_GENERIC_MIME: Final = frozenset(
    {"", "application/octet-stream", "binary/octet-stream", "application/x-download"}
)
_OTHER_ZIPS: Final = (
    ("xl/workbook.xml", "Excel spreadsheets (XLSX)"),
    ("ppt/presentation.xml", "PowerPoint presentations (PPTX)"),
    ("content.xml", "OpenDocument files"),
)


def detect_kind(filename: str, content_type: str | None, data: bytes) -> str:
    """The canonical kind ("pdf", "docx", "txt", "markdown", "html") of an upload.

    Trusts the bytes before the name and the name before the declared content type. Raises
    `UnsupportedType`, `CorruptDocument` (named .pdf but not a PDF, text that is not text) or
    `EmptyDocument` (no bytes at all).
    """
    return _detect(filename, content_type, data)[0]


def _detect(filename: str, content_type: str | None, data: bytes) -> tuple[str, str | None]:
    """The kind and, for text kinds, the decoded text (decoding is part of the verdict)."""
    if not data:
        raise EmptyDocument("the file is empty")
    ext = _extension(filename)
    mime = (content_type or "").split(";")[0].strip().lower()
    mime = "" if mime in _GENERIC_MIME else mime
    declared = _declared_kind(ext, mime)
    # Readers tolerate junk before the header; a text file that merely mentions "%PDF-" is
    # only taken for a PDF when it starts with it.
    if data.lstrip().startswith(b"%PDF-") or (declared == "pdf" and b"%PDF-" in data[:1024]):
        return "pdf", None
    if data.startswith(_ZIP_MAGIC):
        return _zip_kind(data, ext), None
    sniffed = _sniff_binary(data)
    if sniffed is not None:
        named = f" (the file is named as {SUPPORTED[declared].label})" if declared else ""
        raise UnsupportedType(f"{sniffed} is not supported{named}: {_ACCEPTED}")
    if declared in ("pdf", "docx"):
        label = SUPPORTED[declared].label
        raise CorruptDocument(f"the file is named as {label} but its contents are not {label}")
    if declared is None and (ext or mime):
        what = f"{mime} is" if mime else f"{ext} files are"
        raise UnsupportedType(f"{what} not supported: {_ACCEPTED}")
    text = _decode_text(data)
    if declared is None:  # nothing to go on but the bytes, which are text
        declared = "html" if _looks_like_html(text) else "txt"
    return declared, text


def _extension(filename: str) -> str:
    name = re.split(r"[/\\]", filename.strip())[-1].lower()
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def _declared_kind(ext: str, mime: str) -> str | None:
    for kind, fmt in SUPPORTED.items():
        if ext in fmt.extensions:
            return kind
    for kind, fmt in SUPPORTED.items():
        if mime in fmt.mime_types:
            return kind
    return None


def _sniff_binary(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] in _RIFF:
        return _RIFF[data[8:12]]
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


def _zip_kind(data: bytes, ext: str) -> str:
    named_docx = ext in SUPPORTED["docx"].extensions
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        if named_docx:
            raise CorruptDocument(
                f"the DOCX could not be read: damaged ZIP package ({exc})"
            ) from exc
        raise UnsupportedType(f"ZIP archives are not supported: {_ACCEPTED}") from exc
    if "word/document.xml" in names:
        return "docx"
    what = next((label for part, label in _OTHER_ZIPS if part in names), "ZIP archives")
    raise UnsupportedType(f"{what} are not supported: {_ACCEPTED}")


_BOMS: Final = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),  # before UTF-16 LE, whose BOM is its prefix
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_CONTROL: Final = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def _decode_text(data: bytes) -> str:
    """UTF-8 (BOM or not), UTF-16/32 with a BOM, else Windows-1252, which is what Notepad and
    older Office exports write; anything with NULs or many control characters is binary."""
    text = _decode_bytes(data)
    if len(_CONTROL.findall(text)) > max(8, len(text) // 100):
        raise CorruptDocument("the file contains binary data (control characters), not text")
    return text


def _decode_bytes(data: bytes) -> str:
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec)
            except UnicodeDecodeError as exc:
                raise CorruptDocument(f"the text is not valid {codec.upper()}: {exc}") from exc
    if b"\x00" in data:
        raise CorruptDocument("the file contains binary data (NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise CorruptDocument("the text is neither UTF-8 nor Windows-1252") from exc


def _looks_like_html(text: str) -> bool:
    head = text[:1024].lstrip().lower()
    return head.startswith(("<!doctype html", "<html")) or "<body" in head


# ---------------------------------------------------------------------------------------------
# Entry point


def parse_document(data: bytes, filename: str, content_type: str | None = None) -> ParsedDocument:
    """Parse an upload into blocks; raises a `ParseError` subclass for what cannot be ingested."""
    kind, text = _detect(filename, content_type, data)
    if kind == "pdf":
        return _parse_pdf(data)
    if kind == "docx":
        return _parse_docx(data)
    assert text is not None  # _detect decodes every text kind
    text_parsers: dict[str, Callable[[str], ParsedDocument]] = {
        "html": _parse_html,
        "markdown": _parse_markdown,
        "txt": _parse_txt,
    }
    return text_parsers[kind](text)


# ---------------------------------------------------------------------------------------------
# Shared text handling

# Soft hyphens and zero-width characters only ever split words that search must see whole.
_INVISIBLE: Final = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))
_SPACES: Final = re.compile(r"\s+")
_WORDY: Final = re.compile(r"[^\W_]")
_TERMINAL: Final = re.compile(r"[.!?:;,…]['\"”’)\]]*$")
# A plain-text line that ends like this is prose, not a heading: sentence punctuation or a
# dash (dialogue broken off), even inside closing quotes or _italic_/*emphasis* markers.
_TXT_NOT_HEADING_END: Final = re.compile(r"[.!?:;,…\-–—]['\"”’)\]_*]*$")
_DIALOGUE_START: Final = ('"', "“", "'", "‘", "—", "–", "-")


def _clean(text: str) -> str:
    """NFKC (ligatures such as "ﬁ" from PDFs become "fi"), invisibles dropped, whitespace
    collapsed to single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE)
    return _SPACES.sub(" ", text).strip()


def _clean_lines(text: str) -> str:
    """Like `_clean` but keeps line structure (code): indentation stays, trailing space and
    surrounding blank lines go."""
    text = unicodedata.normalize("NFKC", text).translate(_INVISIBLE).replace("\t", "    ")
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(lines).strip("\n")


def _has_words(text: str) -> bool:
    return _WORDY.search(text) is not None


class _Builder:
    """Collects blocks under a heading stack; shared by every format."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.title: str | None = None
        self._stack: list[tuple[int, str]] = []
        self._path: tuple[str, ...] = ()
        self._first_heading: str | None = None

    def heading(self, level: int, text: str) -> None:
        text = _clean(text)
        if not _has_words(text):
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self._path = tuple(t for _, t in self._stack)
        if self._first_heading is None:
            self._first_heading = text

    def add(self, text: str, kind: str = PARAGRAPH, *, keep_lines: bool = False) -> None:
        text = _clean_lines(text) if keep_lines else _clean(text)
        if _has_words(text):  # a lone "---" or "•" is layout, not content
            self.blocks.append(Block(text, self._path, kind))

    def set_title(self, text: str | None) -> None:
        cleaned = _clean(text or "")
        if self.title is None and _has_words(cleaned):
            self.title = cleaned

    def build(self, *, pages: int | None = None, empty: str) -> ParsedDocument:
        if not self.blocks:
            raise EmptyDocument(empty)
        return ParsedDocument(self.blocks, self.title or self._first_heading, pages)


_NO_TEXT: Final = "no extractable text: the document has no words in it"

# "• item", "- item", "1. item", "a) item": the bullet glyph is dropped, a number kept because
# it carries order ("step 3"). Capital letters are left out: "A. Smith" starts many a line.
_BULLET: Final = re.compile(r"^\s*[•◦▪▫‣⁃●○■□–—*+\-·]\s+")
_NUMBERED: Final = re.compile(r"^\s*(?:\d{1,3}|[a-z])[.)]\s+\S")


def _list_item(line: str) -> str | None:
    """The item's text when the line starts a list item, else None."""
    bullet = _BULLET.match(line)
    if bullet:
        return line[bullet.end() :]
    if _NUMBERED.match(line):
        return line.strip()
    return None


def _join_wrapped(lines: list[str]) -> str:
    """Wrapped lines back into one paragraph, re-joining words hyphenated across lines."""
    parts: list[str] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        last = parts[-1] if parts else ""
        if (
            len(last) >= 2
            and last[-1] in "-\u00ad\u2010"
            and last[-2].isalpha()
            and line[0].islower()
        ):
            parts[-1] = last[:-1] + line
        else:
            parts.append(line)
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# PDF


@dataclass(slots=True)
class _Line:
    text: str
    size: float | None  # the font size most of its characters are drawn at
    y: float | None  # baseline height on the page (PDF y grows upwards)


_PDF_EMPTY: Final = (
    "no extractable text: is it a scanned PDF? Run it through OCR (or export it again with "
    "text) and upload the result"
)
_JUNK_TITLE: Final = re.compile(
    r"^(untitled.*|microsoft (word|powerpoint) - .*|.*\.(docx?|pdf|rtf|txt|odt|pptx?))$", re.I
)


def _parse_pdf(data: bytes) -> ParsedDocument:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    # A missing end marker means the upload was cut short; pypdf would otherwise salvage
    # whatever objects it finds and we would index half a document without saying so.
    if b"%%EOF" not in data:
        raise CorruptDocument("the PDF could not be read: the file is incomplete (truncated)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _unlock(reader):
            raise CorruptDocument(
                "the PDF is password-protected: remove the password and upload it again"
            )
        page_count = len(reader.pages)
        read = [_page_lines(page, number) for number, page in enumerate(reader.pages, 1)]
        title = _pdf_title(reader)
    except ParseError:
        raise
    except DependencyError as exc:
        raise CorruptDocument(f"the PDF could not be read: it is encrypted ({exc})") from exc
    # pypdf raises a zoo of exception types on damaged files (its own, KeyError, TypeError,
    # zlib errors, RecursionError...); for an upload they all mean the same thing.
    except Exception as exc:
        raise CorruptDocument(f"the PDF could not be read: {_reason(exc)}") from exc
    pages = [lines for lines in read if lines is not None]
    if read and not pages:
        raise CorruptDocument("the PDF could not be read: no page could be decoded")
    builder = _Builder()
    builder.set_title(title)
    _drop_running_lines(pages)
    _PdfAssembler(pages, builder).run()
    return builder.build(pages=page_count, empty=_PDF_EMPTY)


def _unlock(reader: Any) -> bool:
    """Open a PDF encrypted with an empty user password (permissions only), as viewers do."""
    from pypdf import PasswordType

    return bool(reader.decrypt("") != PasswordType.NOT_DECRYPTED)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if text else type(exc).__name__


def _pdf_title(reader: Any) -> str | None:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # a broken info dictionary costs the title, not the document
        return None
    if not isinstance(title, str) or _JUNK_TITLE.match(title.strip()):
        return None
    return title


def _page_lines(page: Any, number: int) -> list[_Line] | None:
    """The page's lines in pypdf's reading order, with font size and height where known;
    None when the page cannot be decoded."""
    fragments: list[tuple[str, float | None, float | None]] = []

    def visit(text: Any, cm: Any, tm: Any, font: Any, font_size: Any) -> None:
        if isinstance(text, str) and text:
            fragments.append((text, *_geometry(cm, tm, font_size)))

    try:
        plain = page.extract_text(visitor_text=visit)
    except Exception as exc:  # one unreadable page should not cost the other pages
        log.warning("pdf page %d skipped: %s", number, _reason(exc))
        return None
    joined = "".join(text for text, _, _ in fragments)
    if _SPACES.sub("", joined) != _SPACES.sub("", plain or ""):
        # The visitor did not see what extraction returned: keep the text, lose the geometry.
        return [_Line(text, None, None) for text in (plain or "").splitlines() if text.strip()]
    return _lines_from_fragments(fragments)


def _geometry(cm: Any, tm: Any, font_size: Any) -> tuple[float | None, float | None]:
    """Rendered font size and baseline y of a fragment (text matrix × current matrix)."""
    try:
        a, b, c, d, _, f = (
            tm[0] * cm[0] + tm[1] * cm[2],
            tm[0] * cm[1] + tm[1] * cm[3],
            tm[2] * cm[0] + tm[3] * cm[2],
            tm[2] * cm[1] + tm[3] * cm[3],
            0.0,
            tm[4] * cm[1] + tm[5] * cm[3] + cm[5],
        )
        size = float(font_size) * math.sqrt(abs(a * d - b * c))
        return (round(size, 1) if size > 0 else None), float(f)
    except (TypeError, ValueError, IndexError):
        return None, None


def _lines_from_fragments(
    fragments: list[tuple[str, float | None, float | None]],
) -> list[_Line]:
    lines: list[_Line] = []
    parts: list[str] = []
    sizes: Counter[float] = Counter()
    y: float | None = None

    def close() -> None:
        text = "".join(parts)
        if text.strip():
            size = sizes.most_common(1)[0][0] if sizes else None
            lines.append(_Line(text, size, y))

    for text, size, frag_y in fragments:
        for index, piece in enumerate(text.split("\n")):
            if index:
                close()
                parts, sizes, y = [], Counter(), None
            parts.append(piece)
            visible = len(piece.strip())
            if visible and size is not None:
                sizes[size] += visible
            if visible and y is None:
                y = frag_y
    close()
    return lines


def _edge_keys(lines: list[_Line]) -> dict[int, str]:
    """Comparison keys of the two lines at the top and at the bottom of a page. The outermost
    lines compare with digits masked, so "Page 3" matches "Page 4"; the next ones compare
    exactly, so body text that merely ends a page with a number is not mistaken for a footer."""
    keys: dict[int, str] = {}
    last = len(lines) - 1
    for index in {0, 1, last - 1, last} & set(range(len(lines))):
        key = " ".join(lines[index].text.lower().split())
        keys[index] = re.sub(r"\d+", "#", key) if index in (0, last) else key
    return keys


def _drop_running_lines(pages: list[list[_Line]]) -> None:
    """Drop running headers and footers: lines at the top or bottom of most pages."""
    if len(pages) < 2:
        return
    keys = [_edge_keys(lines) for lines in pages]
    seen = Counter(key for page in keys for key in set(page.values()))
    threshold = max(2, math.ceil(len(pages) * 0.6))
    running = {key for key, count in seen.items() if count >= threshold and len(key) <= 120}
    for index, lines in enumerate(pages):
        pages[index] = [
            line for number, line in enumerate(lines) if keys[index].get(number) not in running
        ]


class _PdfAssembler:
    """Lines → headings, paragraphs and list items.

    Headings are lines drawn clearly larger than the body text (the most common size); their
    sizes rank their levels. Paragraph breaks: a vertical gap well above the usual line pitch,
    a change of size, a short line ending a sentence, a bullet, or a page turn mid-sentence
    that does not continue in lower case.
    """

    def __init__(self, pages: list[list[_Line]], builder: _Builder) -> None:
        self.pages = pages
        self.builder = builder
        self.body = self._body_size()
        sizes = {
            line.size
            for lines in pages
            for line in lines
            if line.size is not None and self._is_heading(line)
        }
        self.levels = {size: min(rank, 6) for rank, size in enumerate(sorted(sizes)[::-1], 1)}
        self.pitch = self._pitch()
        self.para: list[str] = []
        self.kind = PARAGRAPH
        self.pending: tuple[float, list[str]] | None = None

    def run(self) -> None:
        previous: _Line | None = None
        for lines in self.pages:
            widest = max((len(line.text.strip()) for line in lines), default=0)
            for index, line in enumerate(lines):
                turned = index == 0
                self._take(line, None if previous is None else (previous, turned), widest)
                previous = line
        self._flush()

    def _take(self, line: _Line, before: tuple[_Line, bool] | None, widest: int) -> None:
        text = line.text.strip()
        if self._is_heading(line) and line.size is not None:
            self._flush_paragraph()
            if self.pending and self.pending[0] == line.size:
                self.pending[1].append(text)  # a heading wrapped over two lines
            else:
                self._flush_heading()
                self.pending = (line.size, [text])
            return
        self._flush_heading()
        item = _list_item(text)
        if item is not None:
            self._flush_paragraph()
            self.kind, self.para = LIST_ITEM, [item]
        elif self.para and before is not None and self._continues(*before, line, widest):
            self.para.append(text)
        else:
            self._flush_paragraph()
            self.kind, self.para = PARAGRAPH, [text]

    def _continues(self, previous: _Line, turned: bool, line: _Line, widest: int) -> bool:
        last, text = previous.text.strip(), line.text.strip()
        if turned:
            return not _TERMINAL.search(last) and text[:1].islower()
        if previous.size and line.size and abs(previous.size - line.size) > 0.1 * previous.size:
            return False
        if self.pitch and previous.y is not None and line.y is not None:
            gap = previous.y - line.y
            if gap <= 0 or gap > 1.4 * self.pitch:
                return False
        ends_sentence = re.search(r"[.!?:]['\"”’)]*$", last) is not None
        return not (ends_sentence and len(last) < 0.7 * widest)

    def _flush_paragraph(self) -> None:
        if self.para:
            self.builder.add(_join_wrapped(self.para), self.kind)
        self.para, self.kind = [], PARAGRAPH

    def _flush_heading(self) -> None:
        if self.pending:
            size, parts = self.pending
            self.builder.heading(self.levels.get(size, 6), " ".join(parts))
        self.pending = None

    def _flush(self) -> None:
        self._flush_heading()
        self._flush_paragraph()

    def _body_size(self) -> float | None:
        weights: Counter[float] = Counter()
        for lines in self.pages:
            for line in lines:
                if line.size is not None:
                    weights[line.size] += len(line.text)
        return weights.most_common(1)[0][0] if weights else None

    def _is_heading(self, line: _Line) -> bool:
        if self.body is None or line.size is None or line.size < 1.15 * self.body:
            return False
        text = line.text.strip()
        return (
            len(text) <= 120
            and len(text.split()) <= 15
            and _has_words(text)
            and not text.endswith((",", ";"))
            and _BULLET.match(text) is None  # "1. Scope" may be a heading, "• Scope" is not
        )

    def _pitch(self) -> float | None:
        """The usual distance between consecutive body lines (the median)."""
        gaps: list[float] = []
        for lines in self.pages:
            for above, below in zip(lines, lines[1:], strict=False):
                if above.y is None or below.y is None or above.size != self.body:
                    continue
                if below.size == self.body and above.y > below.y:
                    gaps.append(above.y - below.y)
        if not gaps:
            return None
        gaps.sort()
        return gaps[len(gaps) // 2]


# ---------------------------------------------------------------------------------------------
# DOCX

_HEADING_STYLE: Final = re.compile(r"^heading\s*([1-9])$", re.I)


def _parse_docx(data: bytes) -> ParsedDocument:
    import docx

    builder = _Builder()
    try:
        document = docx.Document(io.BytesIO(data))
        builder.set_title(_docx_title(document))
        for element in _docx_body_items(document.element.body):
            _docx_item(element, document, builder)
    except ParseError:
        raise
    # python-docx surfaces damage as KeyError, lxml syntax errors, PackageNotFoundError...
    except Exception as exc:
        raise CorruptDocument(f"the DOCX could not be read: {_reason(exc)}") from exc
    return builder.build(empty=_NO_TEXT)


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


def _docx_item(element: Any, document: Any, builder: _Builder) -> None:
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

    return _clean(" ".join(Paragraph(p, document).text for p in cell.iter(_qn("w:p"))))


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
        if _docx_style_name(paragraph).lower() == "title" and _has_words(paragraph.text):
            return str(paragraph.text)
    try:
        title = document.core_properties.title
    except Exception:  # damaged docProps cost the title, not the document
        return None
    return title if isinstance(title, str) else None


# ---------------------------------------------------------------------------------------------
# HTML

_HTML_NOISE: Final = (
    "script",
    "style",
    "nav",
    "footer",
    "header",
    "noscript",
    "template",
    "head",
    "title",
    "svg",
    "iframe",
    "canvas",
    "object",
    "embed",
    "button",
    "select",
)
# A <header> or <footer> inside the content (an article's title block) is content: only the
# page's own banner and footer are chrome. (<form> is not noise: ASP.NET wraps whole pages.)
_CHROME: Final = frozenset({"header", "footer"})
_NOISE_ROLES: Final = ("navigation", "banner", "contentinfo", "search")
_HTML_BLOCKS: Final = frozenset(
    "address article aside blockquote body caption dd details dialog div dl dt fieldset "
    "figcaption figure hr html li main ol p section summary table tbody tfoot thead ul".split()
)
_HTML_HEADINGS: Final = {f"h{level}": level for level in range(1, 7)}


def _parse_html(text: str) -> ParsedDocument:
    from bs4 import BeautifulSoup, Tag

    soup = BeautifulSoup(text, "html.parser")
    builder = _Builder()
    if soup.title is not None:
        builder.set_title(soup.title.get_text())
    first_h1 = soup.find("h1")
    if isinstance(first_h1, Tag):
        builder.set_title(first_h1.get_text())
    for br in soup.find_all("br"):
        br.replace_with(" ")
    _drop_html_noise(soup)
    root = soup.body if soup.body is not None else soup
    _HtmlWalker(builder).walk(root)
    return builder.build(empty=_NO_TEXT)


def _drop_html_noise(soup: Any) -> None:
    from bs4 import Tag

    doomed = list(soup.find_all(list(_HTML_NOISE)))
    doomed += soup.find_all(attrs={"hidden": True})
    doomed += soup.find_all(attrs={"aria-hidden": "true"})
    doomed += soup.find_all(attrs={"role": list(_NOISE_ROLES)})
    for tag in doomed:
        if not isinstance(tag, Tag) or tag.decomposed:
            continue
        if tag.name in _CHROME and tag.find_parent(["article", "main"]) is not None:
            continue
        tag.decompose()


class _HtmlWalker:
    """Depth-first over the tree with an explicit stack: uploaded pages can nest deeper than
    Python's recursion limit. Inline text accumulates until the next block boundary."""

    def __init__(self, builder: _Builder) -> None:
        self.builder = builder
        self.buffer: list[str] = []
        self.kinds: list[str] = [PARAGRAPH]

    def walk(self, root: Any) -> None:
        from bs4.element import NavigableString, PreformattedString, Tag

        stack: list[Any] = list(reversed(list(root.children)))
        while stack:
            node = stack.pop()
            if node is None:  # the end of a block element
                self._flush()
                self.kinds.pop()
            elif isinstance(node, NavigableString):
                if not isinstance(node, PreformattedString):  # comments, doctype, CDATA
                    self.buffer.append(str(node))
            elif isinstance(node, Tag):
                stack.extend(self._enter(node))

    def _enter(self, tag: Any) -> list[Any]:
        """Handle a tag; return what to push (children reversed, after an end marker)."""
        name = tag.name.lower()
        if name in _HTML_HEADINGS:
            self._flush()
            self.builder.heading(_HTML_HEADINGS[name], tag.get_text())
            return []
        if name == "tr":
            self._flush()
            cells = [cell.get_text(" ") for cell in tag.find_all(["td", "th"], recursive=False)]
            self.builder.add(" | ".join(c for c in map(_clean, cells) if c), TABLE_ROW)
            return []
        if name == "pre":
            self._flush()
            self.builder.add(tag.get_text(), keep_lines=True)
            return []
        children = list(reversed(list(tag.children)))
        if name not in _HTML_BLOCKS:
            return children  # inline: its text joins the current block
        self._flush()
        self.kinds.append(LIST_ITEM if name == "li" else PARAGRAPH)
        return [None, *children]

    def _flush(self) -> None:
        if self.buffer:
            self.builder.add("".join(self.buffer), self.kinds[-1])
            self.buffer.clear()


# ---------------------------------------------------------------------------------------------
# Markdown

_ATX: Final = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT: Final = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE: Final = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_THEMATIC: Final = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_MD_ITEM: Final = re.compile(r"^\s*(?:[-*+]|(\d{1,9}[.)]))[ \t]+(.*)$")
_TASK_BOX: Final = re.compile(r"^\[[ xX]\][ \t]+")
_QUOTE: Final = re.compile(r"^ {0,3}>[ \t]?")
_TABLE_RULE: Final = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_REF_DEFINITION: Final = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S+")
_HEADING_ID: Final = re.compile(r"\s*\{#[^}]*\}\s*$")

# Inline markup, in the order it is undone. Escaped characters are parked on private-use code
# points first so that "\*" is not read as emphasis, then put back.
_ESCAPE: Final = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])")
_INLINE: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"(`+)(.+?)\1"), r"\2"),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[\^[^\]]+\]"), ""),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),
    (re.compile(r"<((?:https?://|mailto:)[^>\s]+)>"), r"\1"),
    (re.compile(r"</?[A-Za-z][^>]*>"), ""),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"\*(?=\S)(.+?)(?<=\S)\*"), r"\1"),
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"\1"),
)


def _strip_inline(text: str) -> str:
    parked = _ESCAPE.sub(lambda m: chr(0xF0000 + ord(m.group(1))), text)
    for pattern, replacement in _INLINE:
        parked = pattern.sub(replacement, parked)
    return re.sub(r"[\U000F0000-\U000F00FF]", lambda m: chr(ord(m.group()) - 0xF0000), parked)


def _parse_markdown(text: str) -> ParsedDocument:
    builder = _Builder()
    _MarkdownReader(text.splitlines(), builder).run()
    return builder.build(empty=_NO_TEXT)


class _MarkdownReader:
    """A line-by-line CommonMark subset: enough structure for retrieval, not for rendering."""

    def __init__(self, lines: list[str], builder: _Builder) -> None:
        self.lines = lines
        self.builder = builder
        self.para: list[str] = []
        self.kind = PARAGRAPH
        self.in_table = False

    def run(self) -> None:
        index = self._skip_front_matter()
        while index < len(self.lines):
            index = self._line(index)
        self._flush()

    def _skip_front_matter(self) -> int:
        """YAML front matter is metadata: only its title is kept."""
        if not self.lines or self.lines[0].strip() != "---":
            return 0
        end = next(
            (i for i in range(1, len(self.lines)) if self.lines[i].strip() in ("---", "...")), 0
        )
        for line in self.lines[1:end]:
            if line.lower().startswith("title:"):
                self.builder.set_title(line[6:].strip().strip("'\""))
        return end + 1 if end else 0

    def _line(self, index: int) -> int:
        """Consume the line at `index` (and a fenced block's lines); return the next index."""
        line = self.lines[index]
        fence = _FENCE.match(line)
        if fence:
            return self._fenced(index, fence.group(1))
        if not line.strip():
            self._flush()
        elif (atx := _ATX.match(line)) is not None:
            self._flush()
            self._heading(len(atx.group(1)), atx.group(2) or "")
        elif self._table_row(index, line):
            pass
        elif _SETEXT.match(line) and self.para and self.kind == PARAGRAPH:
            heading, self.para = " ".join(self.para), []
            self._heading(1 if line.strip()[0] == "=" else 2, heading)
        elif _THEMATIC.match(line) or _REF_DEFINITION.match(line):
            self._flush()
        elif (item := _MD_ITEM.match(line)) is not None:
            self._flush()
            number, body = item.groups()
            body = _TASK_BOX.sub("", body)
            self.kind, self.para = LIST_ITEM, [f"{number} {body}" if number else body]
        else:
            self.para.append(_QUOTE.sub("", line).strip())
        return index + 1

    def _fenced(self, index: int, fence: str) -> int:
        self._flush()
        end = index + 1
        while end < len(self.lines):
            closing = self.lines[end].strip()
            if closing.startswith(fence) and not closing.strip(fence[0]):
                break
            end += 1
        self.builder.add("\n".join(self.lines[index + 1 : end]), keep_lines=True)
        return end + 1

    def _table_row(self, index: int, line: str) -> bool:
        """GFM tables: a row with pipes above a |---|---| rule starts one; rows follow."""
        following = self.lines[index + 1] if index + 1 < len(self.lines) else ""
        if not self.in_table and "|" in line and _TABLE_RULE.match(following) and "-" in following:
            self._flush()
            self.in_table = True
        if not self.in_table:
            return False
        if "|" not in line:
            self.in_table = False
            return False
        if not _TABLE_RULE.match(line):
            cells = [_strip_inline(cell) for cell in line.strip().strip("|").split("|")]
            self.builder.add(" | ".join(c.strip() for c in cells if c.strip()), TABLE_ROW)
        return True

    def _heading(self, level: int, text: str) -> None:
        self.builder.heading(level, _strip_inline(_HEADING_ID.sub("", text)))

    def _flush(self) -> None:
        self.in_table = False
        if self.para:
            self.builder.add(_strip_inline(" ".join(self.para)), self.kind)
        self.para, self.kind = [], PARAGRAPH


# ---------------------------------------------------------------------------------------------
# Plain text

_UNDERLINE: Final = re.compile(r"^\s*(=+|-+)\s*$")


def _parse_txt(text: str) -> ParsedDocument:
    """Paragraphs are separated by blank lines. A lone short line without final punctuation
    followed by a longer paragraph reads as a heading, as does a line underlined with = or -."""
    builder = _Builder()
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
    return builder.build(empty=_NO_TEXT)


def _is_txt_heading(line: str, following: str) -> bool:
    return (
        len(line) < 80
        and _has_words(line)
        and not _TXT_NOT_HEADING_END.search(line)
        and not line.startswith(_DIALOGUE_START)
        and _BULLET.match(line) is None
        and len(_clean(following)) > len(line)
    )


def _txt_paragraph(lines: list[str], builder: _Builder) -> None:
    """Lines of one paragraph: bulleted lines become list items, other lines wrap on."""
    current: list[str] = []
    kind = PARAGRAPH
    for line in lines:
        item = _list_item(line)
        if item is not None:
            if current:
                builder.add(" ".join(current), kind)
            current, kind = [item], LIST_ITEM
        else:
            current.append(line)
    if current:
        builder.add(" ".join(current), kind)
