"""Parsing in a worker process: the same result as in-process, its refusals as they are, and a
parse that runs out of time or memory becomes a refusal with a reason, never a dead server."""

from __future__ import annotations

import asyncio
import os

import pytest

from app.rag.parsing import (
    ArchiveLimits,
    CorruptDocument,
    ParseLimits,
    ParseWorkerFailed,
    UnsafeArchive,
    UnsupportedType,
    parse_document,
    parse_isolated,
)
from tests.fixtures import files, zips

MB = 1024 * 1024
SECTIONS = {
    "Opening hours": "We are open from 8 am to 5 pm on weekdays.",
    "Gift vouchers": "Gift vouchers are valid for one year and for any service.",
}


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("hours.docx", files.docx(SECTIONS)),
        ("hours.pdf", files.pdf(list(SECTIONS.values()))),
        ("hours.md", files.markdown(SECTIONS)),
        ("café.txt", "Crème brûlée — 5 €.\n\nDeuxième paragraphe.".encode()),
        ("hours.html", files.html(SECTIONS)),
    ],
    ids=["docx", "pdf", "markdown", "html", "unicode-text"],
)
async def test_the_worker_parses_as_the_server_would(name: str, data: bytes) -> None:
    isolated = await parse_isolated(data, name, None, ParseLimits())
    assert isolated == parse_document(data, name)


async def test_refusals_come_back_as_their_own_kind() -> None:
    with pytest.raises(UnsupportedType, match="image/png is not supported"):
        await parse_isolated(b"\x89PNG\r\n\x1a\n" + bytes(32), "logo.png", None, ParseLimits())
    with pytest.raises(CorruptDocument, match="named as PDF"):
        await parse_isolated(b"just words", "report.pdf", None, ParseLimits())
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        await parse_isolated(zips.docx_bomb(), "bomb.docx", None, ParseLimits())


async def test_a_parse_over_its_time_is_stopped() -> None:
    limits = ParseLimits(timeout_s=0.001)  # less than any Python takes to start
    with pytest.raises(ParseWorkerFailed, match=r"longer than 0\.001 s and was stopped"):
        await parse_isolated(files.markdown(SECTIONS), "hours.md", None, limits)


async def test_a_parse_over_its_memory_fails_with_a_reason() -> None:
    limits = ParseLimits(memory_mb=1)  # below what the worker already uses
    with pytest.raises(ParseWorkerFailed, match=r"more than the 1 MB of memory"):
        await parse_isolated(b"words " * (MB // 2), "big.txt", None, limits)


async def test_the_text_sent_back_is_capped() -> None:
    limits = ParseLimits(max_output_bytes=1000)
    with pytest.raises(ParseWorkerFailed, match="more than"):
        await parse_isolated(b"words and more words\n\n" * 500, "long.txt", None, limits)


async def test_the_archive_limits_reach_the_worker() -> None:
    big = zips.docx_incompressible(2 * MB)
    limits = ParseLimits(archive=ArchiveLimits(max_unpacked_bytes=MB))
    with pytest.raises(UnsafeArchive, match="would unpack to"):
        await parse_isolated(big, "photos.docx", None, limits)


async def test_the_event_loop_keeps_running_while_a_worker_parses() -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    try:
        await parse_isolated(files.docx(SECTIONS), "hours.docx", None, ParseLimits())
    finally:
        ticker.cancel()
    assert ticks > 10  # the loop turned while the worker started and parsed


async def test_a_cancelled_parse_leaves_no_worker_behind() -> None:
    before = _children()
    task = asyncio.create_task(
        parse_isolated(files.docx(SECTIONS), "hours.docx", None, ParseLimits())
    )
    for _ in range(200):  # until the worker exists
        await asyncio.sleep(0.005)
        if _children() - before:
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _children() - before == set()


def _children() -> set[int]:
    """Live (not zombie) child processes of this one, from /proc."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == me:
            found.add(int(entry))
    return found
