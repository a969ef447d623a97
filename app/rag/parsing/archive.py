"""Zip containers (DOCX) judged before they are expanded, and read with a cap when they are.

A DOCX is a zip archive, and a zip can declare gigabytes in a few kilobytes (a "zip bomb").
`check_archive` looks only at the central directory: the entry count (walked record by record,
before `zipfile` builds an object per entry), the total declared uncompressed size, the
compression ratio against the bytes actually uploaded, and the compression methods. Declared
sizes can lie, so `verify_archive` then inflates every entry in bounded chunks and stops at the
cap; it runs in the parse worker, right before the DOCX parser reads the package.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass
from typing import Final

from app.rag.parsing.model import CorruptDocument, ParseError

MB: Final = 1024 * 1024

_EOCD: Final = b"PK\x05\x06"
_EOCD_SIZE: Final = 22
_ZIP64_LOCATOR: Final = b"PK\x06\x07"
_ZIP64_EOCD: Final = b"PK\x06\x06"
_CENTRAL_HEADER: Final = b"PK\x01\x02"
_CENTRAL_HEADER_SIZE: Final = 46
_MAX_COMMENT: Final = 0xFFFF
# Word and LibreOffice write only these; bzip2 and LZMA entries are inflated by `zipfile` in one
# call with no output bound, so the read cap could not stop them.
_METHODS: Final = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_READ_CHUNK: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """What a zip container may expand to (`max_ratio`: unpacked bytes per uploaded byte)."""

    max_unpacked_bytes: int = 200 * MB
    max_ratio: float = 100.0
    max_entries: int = 10_000


class UnsafeArchive(ParseError):
    """A zip container that would expand past the limits (a zip bomb, or near enough)."""


def check_archive(data: bytes, label: str, limits: ArchiveLimits) -> None:
    """Refuse an archive from its central directory alone; nothing is inflated.

    Raises `UnsafeArchive`; a damaged archive is left for `zipfile` to report.
    """
    check_entry_count(data, label, limits)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return
    check_entries(entries, len(data), label, limits)


def check_entry_count(data: bytes, label: str, limits: ArchiveLimits) -> None:
    """Count the central directory's records up to the limit, without building them."""
    count = _count_entries(data, stop_after=limits.max_entries)
    if count > limits.max_entries:
        raise UnsafeArchive(
            f"the {label} holds more than {limits.max_entries:,} files, the most a document may "
            "have; save it again from your word processor and upload the result"
        )


def check_entries(
    entries: list[zipfile.ZipInfo], packed: int, label: str, limits: ArchiveLimits
) -> None:
    """Total declared size, ratio to the uploaded size, count and compression methods."""
    if len(entries) > limits.max_entries:
        raise UnsafeArchive(
            f"the {label} holds {len(entries):,} files, more than the {limits.max_entries:,} a "
            "document may have"
        )
    for entry in entries:
        if entry.compress_type not in _METHODS:
            raise UnsafeArchive(
                f"the {label} uses a compression method (number {entry.compress_type}) that "
                "office files do not use; save it again from your word processor"
            )
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > limits.max_unpacked_bytes:
        raise UnsafeArchive(
            f"the {label} would unpack to {size_text(unpacked)}, more than the "
            f"{size_text(limits.max_unpacked_bytes)} allowed; split it or remove large embedded "
            "files"
        )
    ratio = unpacked / max(packed, 1)
    if ratio > limits.max_ratio:
        raise UnsafeArchive(
            f"the {label} would unpack from {size_text(packed)} to {size_text(unpacked)} "
            f"(compressed {ratio:,.0f} to 1, over the {limits.max_ratio:g} to 1 allowed); a "
            "document compressed this much is refused as a possible zip bomb"
        )


def verify_archive(data: bytes, label: str, limits: ArchiveLimits) -> None:
    """Check the central directory, then inflate every entry in bounded chunks, stopping at
    the cap whatever the entries declare (their real sizes are what the parser will read)."""
    check_entry_count(data, label, limits)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
            check_entries(entries, len(data), label, limits)
            total = 0
            for entry in entries:
                with archive.open(entry) as stream:
                    while chunk := stream.read(_READ_CHUNK):
                        total += len(chunk)
                        if total > limits.max_unpacked_bytes:
                            raise UnsafeArchive(
                                f"the {label} unpacks to more than "
                                f"{size_text(limits.max_unpacked_bytes)}, the most allowed"
                            )
    except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError) as exc:
        # A lying size ends here too: zipfile stops at the declared size and the CRC fails.
        raise CorruptDocument(
            f"the {label} could not be read: damaged ZIP package ({exc})"
        ) from exc


def _count_entries(data: bytes, *, stop_after: int) -> int:
    """Central directory records, walked (the end record's own count may lie), stopping once
    there are more than `stop_after`; 0 when there is no directory to walk."""
    end = data.rfind(_EOCD, max(0, len(data) - _EOCD_SIZE - _MAX_COMMENT))
    if end < 0 or end + _EOCD_SIZE > len(data):
        return 0
    (size,) = struct.unpack_from("<I", data, end + 12)
    directory_end = end
    # Zip64 (more than 65,535 entries, or large sizes): its own end record, of the fixed size
    # zipfile also assumes, and a locator sit between the directory and the classic end record.
    locator = end - 20
    record = locator - 56
    if record >= 0 and data[locator : locator + 4] == _ZIP64_LOCATOR:
        if data[record : record + 4] != _ZIP64_EOCD:
            return 0
        (size,) = struct.unpack_from("<Q", data, record + 40)
        directory_end = record
    position = max(0, directory_end - size)
    count = 0
    while position + _CENTRAL_HEADER_SIZE <= directory_end:
        if data[position : position + 4] != _CENTRAL_HEADER:
            break
        name, extra, comment = struct.unpack_from("<HHH", data, position + 28)
        position += _CENTRAL_HEADER_SIZE + name + extra + comment
        count += 1
        if count > stop_after:
            break
    return count


def size_text(size: int) -> str:
    """A size for a message: KB under a megabyte, else MB with one decimal."""
    if size < MB:
        return f"{size / 1024:,.0f} KB"
    return f"{size / MB:,.1f} MB"
