"""PDF → blocks with pypdf: headings from font sizes, running headers and footers dropped."""

from __future__ import annotations

import io
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from app.rag.parsing.model import (
    LIST_ITEM,
    PARAGRAPH,
    BlockBuilder,
    CorruptDocument,
    ParsedDocument,
    ParseError,
    reason,
)
from app.rag.parsing.text import BULLET, SPACES, has_words, join_wrapped, list_item

log = logging.getLogger(__name__)

_TERMINAL: Final = re.compile(r"[.!?:;,…]['\"”’)\]]*$")


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


def parse_pdf(data: bytes) -> ParsedDocument:
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
        raise CorruptDocument(f"the PDF could not be read: {reason(exc)}") from exc
    pages = [lines for lines in read if lines is not None]
    if read and not pages:
        raise CorruptDocument("the PDF could not be read: no page could be decoded")
    builder = BlockBuilder()
    builder.set_title(title)
    _drop_running_lines(pages)
    _PdfAssembler(pages, builder).run()
    return builder.build(pages=page_count, empty=_PDF_EMPTY)


def _unlock(reader: Any) -> bool:
    """Open a PDF encrypted with an empty user password (permissions only), as viewers do."""
    from pypdf import PasswordType

    return bool(reader.decrypt("") != PasswordType.NOT_DECRYPTED)


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
        log.warning("pdf page %d skipped: %s", number, reason(exc))
        return None
    joined = "".join(text for text, _, _ in fragments)
    if SPACES.sub("", joined) != SPACES.sub("", plain or ""):
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

    def __init__(self, pages: list[list[_Line]], builder: BlockBuilder) -> None:
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
        item = list_item(text)
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
            self.builder.add(join_wrapped(self.para), self.kind)
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
            and has_words(text)
            and not text.endswith((",", ";"))
            and BULLET.match(text) is None  # "1. Scope" may be a heading, "• Scope" is not
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
