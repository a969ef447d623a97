"""The knowledge base as the rest of Velox uses it: upload, delete, search, and the context a
call's turn gets. Routes and the call loop go through here; they never touch chunks."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Final

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.database import Database
from app.db.models import DEFAULT_KNOWLEDGE_BASE_NAME, Document, KnowledgeBase
from app.rag.embedder import Embedder
from app.rag.ingest import Ingestor
from app.rag.limits import UploadPolicy
from app.rag.parsing import SUPPORTED, ArchiveLimits, detect_kind
from app.rag.parsing.archive import size_text
from app.rag.passage import SearchHit
from app.rag.policy import KnowledgeSettings
from app.rag.search import HybridSearch, Mode
from app.rag.storage import FileStore

# pg_advisory_xact_lock(class, org): uploads of one org are counted against its quota one at a
# time, so two at once cannot both pass the last free slot. An arbitrary constant class.
_QUOTA_LOCK_CLASS: Final = 0x7E10


class DuplicateDocument(Exception):
    """The same content is already in the knowledge base."""

    def __init__(self, existing: Document) -> None:
        super().__init__(
            f"this file has the same content as {existing.filename!r} ({existing.id}), "
            "already in the knowledge base"
        )
        self.existing = existing


class QuotaExceeded(Exception):
    """The organization's documents or stored bytes would pass its quota."""


class KnowledgeService:
    """Uploads, searches and call context over the organization's knowledge bases."""

    def __init__(
        self,
        db: Database,
        embedder: Embedder,
        store: FileStore,
        ingestor: Ingestor,
        search: HybridSearch,
        *,
        policy: UploadPolicy | None = None,
    ) -> None:
        self.db = db
        self.policy = policy or UploadPolicy()
        self.embedder = embedder
        self.store = store
        self.ingestor = ingestor
        self.searcher = search
        # A knowledge base's embedding model is fixed when it is created, so a call's turns ask
        # for it once, not once a turn (keyed by org too: an id alone proves no ownership).
        self._models: dict[tuple[uuid.UUID, uuid.UUID], str] = {}

    async def default_knowledge_base(self, session: AsyncSession) -> KnowledgeBase:
        """The organization's default knowledge base, created on first use."""
        kb = await session.scalar(
            select(KnowledgeBase).where(KnowledgeBase.name == DEFAULT_KNOWLEDGE_BASE_NAME)
        )
        if kb is not None:
            return kb
        kb = self.new_knowledge_base(DEFAULT_KNOWLEDGE_BASE_NAME)
        session.add(kb)
        try:
            await session.commit()
        except IntegrityError:  # another upload created it at the same moment
            await session.rollback()
            kb = await session.scalar(
                select(KnowledgeBase).where(KnowledgeBase.name == DEFAULT_KNOWLEDGE_BASE_NAME)
            )
            assert kb is not None
        return kb

    def new_knowledge_base(self, name: str) -> KnowledgeBase:
        """A knowledge base bound to this server's embedder."""
        return KnowledgeBase(
            name=name, embedding_model=self.embedder.name, dimension=self.embedder.dimension
        )

    async def upload(
        self,
        session: AsyncSession,
        org_id: uuid.UUID,
        kb: KnowledgeBase,
        filename: str,
        content_type: str | None,
        data: bytes,
    ) -> Document:
        """Store the file, record it as `queued` and start ingesting it.

        The kind is told from the bytes (`content_type` is only a hint) and recorded as its
        media type; a DOCX is judged from its zip directory before anything is inflated.

        Raises:
            ParseError: the type is not supported or the bytes are not what they claim
                (`UnsupportedType`, `UnsafeArchive` for a zip bomb, `CorruptDocument`...).
            DuplicateDocument: the same bytes are already in `kb`.
            QuotaExceeded: the organization has no room left for it.
        """
        # Decoding 20 MB of text and hashing it would hold the event loop for a while.
        kind, digest = await asyncio.to_thread(
            _identify, filename, content_type, data, self.policy.parse.archive
        )
        existing = await session.scalar(
            select(Document).where(Document.knowledge_base_id == kb.id, Document.sha256 == digest)
        )
        if existing is not None:
            raise DuplicateDocument(existing)
        await self._check_quota(session, org_id, len(data))
        document = Document(
            id=uuid.uuid4(),
            knowledge_base_id=kb.id,
            filename=filename[:300],
            content_type=SUPPORTED[kind].media_type,
            size_bytes=len(data),
            sha256=digest,
            status="queued",
        )
        document.storage_path = await self.store.save(org_id, document.id, data)
        session.add(document)
        try:
            await session.commit()
        except BaseException as exc:  # a database error, or the request cancelled
            await self.store.delete(document.storage_path)
            if not isinstance(exc, IntegrityError):
                raise
            await session.rollback()
            # The same file uploaded twice at once; else (the knowledge base deleted
            # meanwhile) the error stands.
            twin = await session.scalar(
                select(Document).where(
                    Document.knowledge_base_id == kb.id, Document.sha256 == digest
                )
            )
            if twin is None:
                raise
            raise DuplicateDocument(twin) from exc
        self.ingestor.submit(org_id, document.id)
        return document

    async def _check_quota(self, session: AsyncSession, org_id: uuid.UUID, size: int) -> None:
        """Held until the upload commits: the lock makes count-then-insert one step per org."""
        quota = self.policy.quota
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:lock_class, hashtext(:org))"),
            {"lock_class": _QUOTA_LOCK_CLASS, "org": str(org_id)},
        )
        count, stored = (
            await session.execute(
                select(
                    func.count(Document.id),
                    func.coalesce(
                        func.sum(Document.size_bytes).filter(Document.storage_path.is_not(None)),
                        0,
                    ),
                ).where(Document.org_id == org_id)
            )
        ).one()
        if count >= quota.max_documents:
            raise QuotaExceeded(
                f"storage quota exceeded: the organization has {count} documents, the most it "
                f"may keep is {quota.max_documents}; delete documents it no longer needs "
                "(failed ones count too) or ask the operator to raise MAX_DOCUMENTS_PER_ORG"
            )
        if stored + size > quota.max_bytes:
            raise QuotaExceeded(
                f"storage quota exceeded: this file ({size_text(size)}) would bring the "
                f"organization's stored documents to {size_text(stored + size)}, over its "
                f"{size_text(quota.max_bytes)} limit; delete documents it no longer needs or ask "
                "the operator to raise MAX_STORAGE_MB_PER_ORG"
            )

    async def delete(self, session: AsyncSession, document: Document) -> None:
        """Remove the document, its chunks (by cascade) and its stored file."""
        path = document.storage_path
        await session.delete(document)
        await session.commit()
        await self.store.delete(path)

    async def search(
        self,
        org_id: uuid.UUID,
        kb: KnowledgeBase,
        query: str,
        *,
        k: int = 5,
        mode: Mode = "hybrid",
    ) -> list[SearchHit]:
        """Hybrid search in `kb`, one of `org_id`'s (its embedder must be this server's)."""
        self._check_model(kb.embedding_model, kb.name)
        return await self.searcher.search(org_id, kb.id, query, k=k, mode=mode)

    def _check_model(self, model: str, kb_name: str) -> None:
        if model != self.embedder.name:
            raise ValueError(
                f"knowledge base {kb_name!r} is embedded with {model}, not {self.embedder.name}"
            )

    async def context(
        self,
        org_id: uuid.UUID,
        kb_id: uuid.UUID,
        query: str,
        settings: KnowledgeSettings,
    ) -> list[SearchHit]:
        """The best chunks for a caller's words, within the agent's chunk count and budget."""
        model = self._models.get((org_id, kb_id))
        if model is None:
            async with self.db.tenant(org_id) as session:
                kb = await session.scalar(select(KnowledgeBase).where(KnowledgeBase.id == kb_id))
            if kb is None:
                return []  # another org's, or deleted
            model = self._models[(org_id, kb_id)] = kb.embedding_model
        self._check_model(model, str(kb_id))
        hits = await self.searcher.search(org_id, kb_id, query, k=settings.top_k)
        chosen: list[SearchHit] = []
        used = 0
        nearest = min(
            (h.vector_distance for h in hits if h.vector_distance is not None), default=None
        )
        for hit in hits:
            if not settings.relevant(
                hit.vector_distance, shares_words=hit.text_rank is not None, nearest=nearest
            ):
                continue
            if chosen and used + hit.token_count > settings.token_budget:
                break
            chosen.append(hit)
            used += hit.token_count
        return chosen


def _identify(
    filename: str, content_type: str | None, data: bytes, limits: ArchiveLimits
) -> tuple[str, str]:
    kind = detect_kind(filename, content_type, data, archive_limits=limits)
    return kind, hashlib.sha256(data).hexdigest()
