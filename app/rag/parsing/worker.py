"""Parsing in a short-lived worker process, so that a hostile file costs at most its own ingestion.

The process that serves live calls never runs a parser on uploaded bytes. Each parse starts a
fresh Python (`python -I -c …`, the same interpreter and import path as the server, an empty
environment, so no secret reaches the process reading hostile input), which caps its own
address space (`RLIMIT_AS` = `memory_mb`) and CPU time, reads the file from stdin and writes
the parsed document to stdout as JSON. The server waits on the pipes with asyncio (the event
loop is never blocked), kills the worker after `timeout_s`, and turns a crash, a timeout or an
out-of-memory into a `ParseWorkerFailed` whose message explains it. JSON, not pickle, comes
back: a worker subverted by its input must not be able to run code in the server.

A process per document rather than a pool: ingestion runs one document at a time per replica,
a fresh process starts with nothing a previous file left behind, and killing it is the whole
of the timeout handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, Final

from app.rag.parsing.archive import ArchiveLimits, UnsafeArchive, size_text
from app.rag.parsing.model import (
    Block,
    CorruptDocument,
    EmptyDocument,
    ParsedDocument,
    ParseError,
    UnsupportedType,
    reason,
)

logger = logging.getLogger(__name__)

MB: Final = 1024 * 1024
EXIT_OUT_OF_MEMORY: Final = 3
_HEADER_LIMIT: Final = 64 * 1024
_STDERR_TAIL: Final = 4096
_READ_CHUNK: Final = 64 * 1024
_BOOT: Final = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from app.rag.parsing.worker import main; main()"
)


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """What one parse may cost: wall time, address space, what a zip may expand to.

    `max_output_bytes` bounds the parsed text the worker may send back.
    """

    timeout_s: float = 120.0
    memory_mb: int = 1024
    archive: ArchiveLimits = field(default_factory=ArchiveLimits)
    max_output_bytes: int = 200 * MB


class ParseWorkerFailed(ParseError):
    """The parser ran out of time or memory, or crashed; the file is refused, not retried."""


async def parse_isolated(
    data: bytes, filename: str, content_type: str | None, limits: ParseLimits
) -> ParsedDocument:
    """`parse_document` in a worker process under `limits`.

    Raises the worker's `ParseError` (unsupported, corrupt, empty, unsafe archive) as is, and
    `ParseWorkerFailed` when the worker did not finish.
    """
    header = {
        "filename": filename,
        "content_type": content_type,
        "memory_mb": limits.memory_mb,
        "cpu_s": math.ceil(limits.timeout_s) + 1,
        "max_unpacked_bytes": limits.archive.max_unpacked_bytes,
        "max_ratio": limits.archive.max_ratio,
        "max_entries": limits.archive.max_entries,
    }
    payload = json.dumps(header).encode() + b"\n" + data
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        _BOOT,
        json.dumps(sys.path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={},
    )
    try:
        async with asyncio.timeout(limits.timeout_s):
            output, errors = await _exchange(process, payload, limits.max_output_bytes)
            code = await process.wait()
    except TimeoutError:
        raise ParseWorkerFailed(
            f"reading the file took longer than {limits.timeout_s:g} s and was stopped; "
            "split it into smaller files or save it again in a simpler format"
        ) from None
    except _TooMuchOutput:
        raise ParseWorkerFailed(
            f"the file holds more than {size_text(limits.max_output_bytes)} of text, "
            "more than a document may have; split it into smaller files"
        ) from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return _outcome(code, output, errors, limits)


class _TooMuchOutput(Exception):
    pass


async def _exchange(
    process: asyncio.subprocess.Process, payload: bytes, cap: int
) -> tuple[bytes, bytes]:
    assert process.stdin and process.stdout and process.stderr
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_feed(process.stdin, payload))
            output = group.create_task(_read_capped(process.stdout, cap))
            errors = group.create_task(_tail(process.stderr, _STDERR_TAIL))
    except* _TooMuchOutput:
        raise _TooMuchOutput from None
    return output.result(), errors.result()


async def _feed(stdin: asyncio.StreamWriter, payload: bytes) -> None:
    # A worker that dies early (out of memory) closes its end: that is reported by its exit.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(payload)
        await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(_READ_CHUNK):
        size += len(chunk)
        if size > cap:
            raise _TooMuchOutput
        chunks.append(chunk)
    return b"".join(chunks)


async def _tail(stream: asyncio.StreamReader, keep: int) -> bytes:
    """The last `keep` bytes, reading everything (a full pipe would stall the worker)."""
    kept = b""
    while chunk := await stream.read(_READ_CHUNK):
        kept = (kept + chunk)[-keep:]
    return kept


_ERRORS: Final[dict[str, type[ParseError]]] = {
    cls.__name__: cls for cls in (UnsupportedType, CorruptDocument, EmptyDocument, UnsafeArchive)
}


def _outcome(code: int, output: bytes, errors: bytes, limits: ParseLimits) -> ParsedDocument:
    if code == EXIT_OUT_OF_MEMORY:
        raise ParseWorkerFailed(
            f"reading the file needed more than the {limits.memory_mb} MB of memory a document "
            "may use; split it into smaller files or save it again in a simpler format"
        )
    if code == -signal.SIGXCPU:  # its own CPU limit, a backstop to the timeout
        raise ParseWorkerFailed(
            f"reading the file took longer than {limits.timeout_s:g} s and was stopped; "
            "split it into smaller files or save it again in a simpler format"
        )
    try:
        message: dict[str, Any] = json.loads(output) if code == 0 else {}
    except ValueError:
        message = {}
    if "error" in message:
        error = message["error"]
        raise _ERRORS.get(str(error["kind"]), ParseError)(str(error["message"]))
    if "document" not in message:
        logger.error(
            "parse worker exited with %s: %s", code, errors.decode("utf-8", "replace").strip()
        )
        what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        raise ParseWorkerFailed(
            f"the file could not be read: the parser stopped unexpectedly ({what})"
        )
    return _document(message["document"])


def _document(data: dict[str, Any]) -> ParsedDocument:
    blocks = [
        Block(str(text), tuple(map(str, path)), str(kind)) for text, path, kind in data["blocks"]
    ]
    title = data["title"]
    pages = data["pages"]
    return ParsedDocument(
        blocks,
        str(title) if title is not None else None,
        int(pages) if pages is not None else None,
    )


# The worker side: runs in the child process only.


def main() -> None:
    """Read a header line and the file from stdin, write `{"document"|"error": …}` to stdout."""
    try:
        _serve()
    except MemoryError:
        # Reporting might need memory we do not have: the exit status says it.
        os._exit(EXIT_OUT_OF_MEMORY)


def _serve() -> None:
    from app.rag.parsing.dispatch import parse_document

    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline(_HEADER_LIMIT))
    _limit(header["memory_mb"], header["cpu_s"])
    data = stdin.read()
    limits = ArchiveLimits(
        max_unpacked_bytes=int(header["max_unpacked_bytes"]),
        max_ratio=float(header["max_ratio"]),
        max_entries=int(header["max_entries"]),
    )
    try:
        parsed = parse_document(
            data, str(header["filename"]), header["content_type"], archive_limits=limits
        )
    except ParseError as exc:
        reply: dict[str, Any] = {"error": {"kind": type(exc).__name__, "message": str(exc)}}
    except MemoryError:
        raise
    except Exception as exc:  # a parser bug on odd input is still this file's problem
        message = f"the file could not be read: {reason(exc)}"
        reply = {"error": {"kind": "CorruptDocument", "message": message}}
    else:
        reply = {
            "document": {
                "title": parsed.title,
                "pages": parsed.pages,
                "blocks": [[b.text, list(b.headings), b.kind] for b in parsed.blocks],
            }
        }
    sys.stdout.buffer.write(json.dumps(reply, ensure_ascii=False).encode())
    sys.stdout.buffer.flush()


def _limit(memory_mb: int, cpu_s: int) -> None:
    import resource

    memory = memory_mb * MB
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    # The server kills the worker at its timeout; this stops it should the server die first.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
