"""Where uploaded files are kept (so a failed ingestion can be retried): a local folder.

Paths are `<org>/<document>`; nothing from the uploader (like its file name) reaches the path.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path


class FileStore:
    """Uploaded originals under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, org_id: uuid.UUID, document_id: uuid.UUID) -> Path:
        return self.root / str(org_id) / str(document_id)

    async def save(self, org_id: uuid.UUID, document_id: uuid.UUID, data: bytes) -> str:
        """Store the bytes; returns the reference kept on the document row."""
        path = self._path(org_id, document_id)
        await asyncio.to_thread(_write, path, data)
        return str(path.relative_to(self.root))

    async def load(self, reference: str) -> bytes:
        """The stored bytes."""
        return await asyncio.to_thread((self.root / reference).read_bytes)

    async def delete(self, reference: str | None) -> None:
        """Remove a stored file, if it is there."""
        if reference:
            await asyncio.to_thread((self.root / reference).unlink, True)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a crash never leaves half a file under the final name
