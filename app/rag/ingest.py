"""Ingestion: a stored upload becomes indexed chunks, in the background, with a status the
dashboard can show (`queued` → `processing` → `ready` | `failed` with a reason).

All of a document's chunks are written in the same transaction that marks it `ready`, so a
failure at any step leaves nothing half-indexed. A document deleted while it is processed is
simply dropped. Replicas that start find documents left `queued` (or stuck in `processing` by a
replica that died) and claim them with a conditional UPDATE, so each is ingested once.

Parsing runs in a worker process with memory and time limits (`parse_isolated`): a hostile file
fails its own document, never this process. A failed document keeps its row and reason; its
stored file is removed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, delete, insert, or_, select, update
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from app.db.database import Database, is_retryable
from app.db.models import Chunk, Document, KnowledgeBase
from app.rag.chunking import chunk_document
from app.rag.embedder import Embedder
from app.rag.parsing import ParseError, ParseLimits, parse_isolated
from app.rag.storage import FileStore

logger = logging.getLogger(__name__)

STALE_PROCESSING = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class ChunkingPolicy:
    """How documents are cut: token sizes as the embedder counts them."""

    max_tokens: int = 200
    overlap_tokens: int = 40
    embed_batch: int = 32


class IngestionFailed(Exception):
    """A document cannot be indexed; the message is shown to the user as the reason."""


class Ingestor:
    """Runs ingestion tasks, a few at a time, and tracks them until they finish."""

    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        store: FileStore,
        *,
        count_tokens: Callable[[str], int],
        policy: ChunkingPolicy | None = None,
        parse_limits: ParseLimits | None = None,
        concurrency: int = 1,
    ) -> None:
        self.db = db
        self.embedder = embedder
        self.store = store
        self.count_tokens = count_tokens
        self.policy = policy or ChunkingPolicy()
        self.parse_limits = parse_limits or ParseLimits()
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, org_id: uuid.UUID, document_id: uuid.UUID) -> None:
        """Ingest in the background."""
        task = asyncio.create_task(self._run(org_id, document_id), name=f"ingest {document_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for everything submitted so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop running tasks (their documents stay `processing` and are resumed later)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def resume(self) -> int:
        """Submit documents nobody is ingesting: still queued, or stuck in processing."""
        async with self.db.system() as session:
            rows = await session.execute(select(Document.org_id, Document.id).where(_unclaimed()))
            pending = list(rows)
        for org_id, document_id in pending:
            self.submit(org_id, document_id)
        return len(pending)

    async def _run(self, org_id: uuid.UUID, document_id: uuid.UUID) -> None:
        async with self._slots:
            if not await self._claim(org_id, document_id):
                return
            try:
                await self._ingest(org_id, document_id)
            except IngestionFailed as exc:
                await self._fail(org_id, document_id, str(exc))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.exception("document %s: ingestion crashed", document_id)
                await self._fail(org_id, document_id, f"internal error: {exc}")

    async def _claim(self, org_id: uuid.UUID, document_id: uuid.UUID) -> bool:
        async with self.db.tenant(org_id) as session:
            claimed = await session.execute(
                update(Document)
                .where(Document.id == document_id, _unclaimed())
                .values(status="processing", error=None, updated_at=datetime.now(UTC))
                .returning(Document.id)
            )
            won = claimed.first() is not None
            await session.commit()
        return won

    async def _ingest(self, org_id: uuid.UUID, document_id: uuid.UUID) -> None:
        async with self.db.tenant(org_id) as session:
            row = await session.execute(
                select(Document, KnowledgeBase)
                .join(KnowledgeBase, KnowledgeBase.id == Document.knowledge_base_id)
                .where(Document.id == document_id)
            )
            found = row.first()
        if found is None:
            return  # deleted meanwhile
        document, kb = found
        if kb.embedding_model != self.embedder.name:
            raise IngestionFailed(
                f"knowledge base {kb.name!r} is embedded with {kb.embedding_model}; this server "
                f"embeds with {self.embedder.name}, and the two must not be mixed"
            )
        if not document.storage_path:
            raise IngestionFailed("the uploaded file was not stored")
        try:
            data = await self.store.load(document.storage_path)
        except FileNotFoundError as exc:
            raise IngestionFailed("the uploaded file is no longer stored; upload it again") from exc
        try:
            parsed = await parse_isolated(
                data, document.filename, document.content_type, self.parse_limits
            )
        except ParseError as exc:
            raise IngestionFailed(str(exc)) from exc
        chunks = await asyncio.to_thread(
            chunk_document,
            parsed,
            count_tokens=self.count_tokens,
            max_tokens=self.policy.max_tokens,
            overlap_tokens=self.policy.overlap_tokens,
        )
        if not chunks:
            raise IngestionFailed("no extractable text")
        vectors = await self._embed([_embedding_text(c.heading, c.text) for c in chunks])
        rows: list[dict[str, Any]] = [
            {
                "id": uuid.uuid4(),
                "org_id": org_id,
                "document_id": document_id,
                "knowledge_base_id": kb.id,
                "position": chunk.position,
                "heading": chunk.heading,
                "text": chunk.text,
                "token_count": chunk.token_count,
                "dimension": kb.dimension,
                "embedding": vector,
            }
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        # Another ingestion or deletion in the same knowledge base can deadlock with this one
        # on the shared word counts (knowledge_terms); Postgres then aborts one of them, which
        # is run again rather than failing the document.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(3),
            wait=wait_random_exponential(multiplier=0.05, max=1.0),
            reraise=True,
        ):
            with attempt:
                stored = await self._store(org_id, document_id, rows, parsed.title)
        if not stored:
            return  # deleted while we worked: nothing kept
        logger.info("document %s: %d chunks indexed", document_id, len(rows))

    async def _store(
        self,
        org_id: uuid.UUID,
        document_id: uuid.UUID,
        rows: list[dict[str, Any]],
        title: str | None,
    ) -> bool:
        """Replace the document's chunks and mark it ready, in one transaction; False when the
        document was deleted meanwhile (and nothing is kept)."""
        # A system session: the bulk insert names org_id on every row itself.
        async with self.db.system() as session:
            await session.execute(
                delete(Chunk).where(Chunk.org_id == org_id, Chunk.document_id == document_id)
            )
            # RETURNING makes SQLAlchemy send multi-row INSERTs (1,000 rows each) instead of one
            # statement per row, so the statement-level trigger that counts the words of the
            # new chunks (knowledge_terms) runs once per thousand, not once per chunk.
            await session.execute(insert(Chunk).returning(Chunk.id), rows)
            done = await session.execute(
                update(Document)
                .where(Document.org_id == org_id, Document.id == document_id)
                .values(status="ready", chunk_count=len(rows), title=title)
                .returning(Document.id)
            )
            if done.first() is None:
                await session.rollback()
                return False
            await session.commit()
            return True

    async def _embed(self, texts: list[str]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        size = self.policy.embed_batch
        for start in range(0, len(texts), size):
            batch = await self.embedder.embed(texts[start : start + size])
            if batch.shape[1] != self.embedder.dimension:
                raise IngestionFailed(f"the embedder returned {batch.shape[1]} dimensions")
            out.extend(batch)
        return out

    async def _fail(self, org_id: uuid.UUID, document_id: uuid.UUID, reason: str) -> None:
        logger.warning("document %s: ingestion failed: %s", document_id, reason)
        try:
            async with self.db.tenant(org_id) as session:
                await session.execute(
                    update(Document)
                    .where(Document.id == document_id)
                    .values(status="failed", error=reason[:2000], chunk_count=0, storage_path=None)
                )
                await session.commit()
        finally:
            # Whatever happened to the row, a failed upload's bytes are not kept.
            await self.store.delete(self.store.reference(org_id, document_id))


def _unclaimed() -> ColumnElement[bool]:
    """Documents nobody is ingesting: still queued, or left in processing by a dead replica."""
    stale = datetime.now(UTC) - STALE_PROCESSING
    return or_(
        Document.status == "queued",
        (Document.status == "processing") & (Document.updated_at < stale),
    )


def _embedding_text(heading: str | None, text: str) -> str:
    # The heading gives a passage its topic ("Returns › Refund window"): embed it with the text.
    return f"{heading}\n{text}" if heading else text
