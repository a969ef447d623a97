"""Where uploaded files are kept (so an interrupted ingestion can resume): a local folder.

Paths are `<org>/<document>`; nothing from the uploader (like its file name) reaches the path.
A file is kept while its document may still be ingested or is ready; every failure removes it.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path


class FileStore:
    """Uploaded originals under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def reference(self, org_id: uuid.UUID, document_id: uuid.UUID) -> str:
        """The reference a document's file is (or would be) stored under."""
        return f"{org_id}/{document_id}"

    async def save(self, org_id: uuid.UUID, document_id: uuid.UUID, data: bytes) -> str:
        """Store the bytes; returns the reference kept on the document row."""
        reference = self.reference(org_id, document_id)
        await asyncio.to_thread(_write, self.root / reference, data)
        return reference

    async def load(self, reference: str) -> bytes:
        """The stored bytes; `FileNotFoundError` when they are gone."""
        return await asyncio.to_thread((self.root / reference).read_bytes)

    async def delete(self, reference: str | None) -> None:
        """Remove a stored file, if it is there."""
        if reference:
            await asyncio.to_thread((self.root / reference).unlink, True)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a crash never leaves half a file under the final name
    finally:
        tmp.unlink(missing_ok=True)  # a full disk must not leave the partial file behind
