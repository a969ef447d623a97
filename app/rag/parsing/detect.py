"""What an upload is: its kind from its bytes, name and declared type, and its text decoded."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from app.rag.parsing.archive import ArchiveLimits, check_entries, check_entry_count
from app.rag.parsing.model import CorruptDocument, EmptyDocument, UnsupportedType


@dataclass(frozen=True, slots=True)
class FileFormat:
    """What an upload form should accept for one kind: extensions carry their dot.

    `media_type` is the one recorded on a document of this kind, whatever the client declared.
    """

    label: str
    extensions: frozenset[str]
    mime_types: frozenset[str]
    media_type: str


SUPPORTED: Final[Mapping[str, FileFormat]] = MappingProxyType(
    {
        "pdf": FileFormat(
            "PDF",
            frozenset({".pdf"}),
            frozenset({"application/pdf", "application/x-pdf"}),
            "application/pdf",
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
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        "txt": FileFormat(
            "text", frozenset({".txt", ".text"}), frozenset({"text/plain"}), "text/plain"
        ),
        "markdown": FileFormat(
            "Markdown",
            frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"}),
            frozenset({"text/markdown", "text/x-markdown"}),
            "text/markdown",
        ),
        "html": FileFormat(
            "HTML",
            frozenset({".html", ".htm", ".xhtml"}),
            frozenset({"text/html", "application/xhtml+xml"}),
            "text/html",
        ),
    }
)

_ACCEPTED: Final = (
    "upload PDF, DOCX, TXT, Markdown or HTML (supported: "
    + "; ".join(f"{f.label} {', '.join(sorted(f.extensions))}" for f in SUPPORTED.values())
    + ")"
)


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


def detect_kind(
    filename: str,
    content_type: str | None,
    data: bytes,
    *,
    archive_limits: ArchiveLimits | None = None,
) -> str:
    """The canonical kind ("pdf", "docx", "txt", "markdown", "html") of an upload.

    Trusts the bytes before the name and the name before the declared content type. Raises
    `UnsupportedType`, `CorruptDocument` (named .pdf but not a PDF, text that is not text) or
    `EmptyDocument` (no bytes at all). A DOCX is judged from its zip directory only, before
    anything is inflated: `UnsafeArchive` when it would expand past `archive_limits`.
    """
    return detect(filename, content_type, data, archive_limits=archive_limits)[0]


def detect(
    filename: str,
    content_type: str | None,
    data: bytes,
    *,
    archive_limits: ArchiveLimits | None = None,
) -> tuple[str, str | None]:
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
        return _zip_kind(data, ext, archive_limits or ArchiveLimits()), None
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


def _zip_kind(data: bytes, ext: str, limits: ArchiveLimits) -> str:
    named_docx = ext in SUPPORTED["docx"].extensions
    label = "DOCX" if named_docx else "archive"
    # zipfile builds an object per entry: count them first, cheaply.
    check_entry_count(data, label, limits)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        if named_docx:
            raise CorruptDocument(
                f"the DOCX could not be read: damaged ZIP package ({exc})"
            ) from exc
        raise UnsupportedType(f"ZIP archives are not supported: {_ACCEPTED}") from exc
    names = {entry.filename for entry in entries}
    if "word/document.xml" in names:
        check_entries(entries, len(data), "DOCX", limits)
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
