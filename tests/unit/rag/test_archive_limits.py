"""A DOCX is judged from its zip directory before anything is inflated, and read with a cap."""

from __future__ import annotations

import io
import zipfile

import pytest

from app.rag.parsing import (
    SUPPORTED,
    ArchiveLimits,
    CorruptDocument,
    UnsafeArchive,
    UnsupportedType,
    detect_kind,
    parse_document,
)
from tests.fixtures import zips

MB = 1024 * 1024


def test_the_issues_docx_bomb_is_refused_from_its_directory() -> None:
    bomb = zips.docx_bomb()
    assert len(bomb) < 128 * 1024  # the 64 KiB DOCX of the issue, 64 MiB unpacked
    with pytest.raises(UnsafeArchive, match=r"zip bomb") as refused:
        detect_kind("policies.docx", None, bomb)
    assert "64.0 MB" in str(refused.value) and "100 to 1" in str(refused.value)


def test_a_bomb_is_refused_whatever_it_is_named() -> None:
    with pytest.raises(UnsafeArchive):
        detect_kind("upload.bin", "application/octet-stream", zips.docx_bomb(16 * MB))


def test_total_declared_size_over_the_limit() -> None:
    big = zips.docx_incompressible(3 * MB)  # a ratio near 1: only the total is over
    limits = ArchiveLimits(max_unpacked_bytes=2 * MB)
    with pytest.raises(UnsafeArchive, match=r"would unpack to 3\.\d MB, more than the 2\.0 MB"):
        detect_kind("photos.docx", None, big, archive_limits=limits)
    assert detect_kind("photos.docx", None, big) == "docx"  # the shipped 200 MB allows it


def test_ratio_over_the_limit_while_the_total_is_small() -> None:
    squeezed = zips.docx_with({"word/media/blank.bin": bytes(16 * MB)})
    with pytest.raises(UnsafeArchive, match="possible zip bomb"):
        detect_kind("blank.docx", None, squeezed)
    relaxed = ArchiveLimits(max_ratio=10_000)
    assert detect_kind("blank.docx", None, squeezed, archive_limits=relaxed) == "docx"


def test_too_many_entries_is_refused_before_zipfile_reads_them() -> None:
    crowded = zips.docx_with_many_entries(10_001)
    with pytest.raises(UnsafeArchive, match=r"more than 10,000 files"):
        detect_kind("crowded.docx", None, crowded)
    assert detect_kind("fine.docx", None, zips.docx_with_many_entries(50)) == "docx"


def test_many_entries_in_any_zip_are_refused_before_it_is_opened() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(60):
            archive.writestr(f"sheet{i}.xml", b"")
    with pytest.raises(UnsafeArchive, match="more than 50 files"):
        detect_kind(
            "book.xlsx", None, buffer.getvalue(), archive_limits=ArchiveLimits(max_entries=50)
        )
    with pytest.raises(UnsupportedType):
        detect_kind("book.xlsx", None, buffer.getvalue())


def test_compression_methods_office_does_not_use_are_refused() -> None:
    # zipfile inflates bzip2 in one call with no bound on its output.
    odd = zips.docx_with({"word/media/x.bin": bytes(1000)}, method=zipfile.ZIP_BZIP2)
    with pytest.raises(UnsafeArchive, match="compression method"):
        detect_kind("odd.docx", None, odd)


def test_declared_sizes_that_lie_are_caught_when_read() -> None:
    liar = zips.docx_lying_about_size()
    assert detect_kind("liar.docx", None, liar) == "docx"  # its directory looks harmless
    with pytest.raises(CorruptDocument, match="damaged ZIP package"):
        parse_document(liar, "liar.docx")


def test_the_read_cap_holds_whatever_is_declared() -> None:
    big = zips.docx_incompressible(3 * MB)
    with pytest.raises(UnsafeArchive, match="more than"):
        parse_document(big, "photos.docx", archive_limits=ArchiveLimits(max_unpacked_bytes=MB))


def test_an_ordinary_docx_passes_and_parses() -> None:
    doc = parse_document(zips.docx_with({}), "hours.docx")
    assert any("8 am" in block.text for block in doc.blocks)


def test_each_kind_has_the_media_type_that_is_recorded() -> None:
    assert SUPPORTED["docx"].media_type in SUPPORTED["docx"].mime_types
    assert {kind: f.media_type for kind, f in SUPPORTED.items()} == {
        "pdf": "application/pdf",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "txt": "text/plain",
        "markdown": "text/markdown",
        "html": "text/html",
    }


def test_the_refusal_lists_the_supported_extensions() -> None:
    with pytest.raises(UnsupportedType) as refused:
        detect_kind("logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(32))
    for ext in (".pdf", ".docx", ".txt", ".md", ".html"):
        assert ext in str(refused.value)
