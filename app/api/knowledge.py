"""`/api/knowledge-bases` and `/api/knowledge/search`: the organization's knowledge bases and
the hybrid search the agent uses, exposed for the dashboard and for debugging."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from app.api.crud import commit_or_409
from app.api.deps import CurrentPrincipal, KnowledgeDep, TenantSession, get_or_404
from app.api.errors import FieldValidationError, responses
from app.db.models import Agent, Document, KnowledgeBase
from app.rag.passage import SearchHit
from app.rag.service import KnowledgeService

router = APIRouter(tags=["knowledge base"], responses=responses(401, 422))


class KnowledgeBaseCreate(BaseModel):
    """A new, empty knowledge base."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)


class KnowledgeBaseOut(BaseModel):
    """A knowledge base and the model its chunks are embedded with."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    embedding_model: str
    dimension: int
    created_at: datetime
    documents: int = 0


class KnowledgeBaseList(BaseModel):
    """The organization's knowledge bases."""

    items: list[KnowledgeBaseOut]


class SearchRequest(BaseModel):
    """A question, and where to look: a knowledge base, an agent's, or the default one."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=2000)
    knowledge_base_id: uuid.UUID | None = None
    agent_id: uuid.UUID | None = None
    k: int = Field(default=5, ge=1, le=50)
    mode: Literal["hybrid", "text", "vector"] = "hybrid"


class SearchResponse(BaseModel):
    """Best first."""

    knowledge_base_id: uuid.UUID
    items: list[SearchHit]


@router.get("/api/knowledge-bases", summary="List knowledge bases")
async def list_knowledge_bases(session: TenantSession) -> KnowledgeBaseList:
    """Every knowledge base with its document count."""
    counts = (
        select(Document.knowledge_base_id, func.count().label("n"))
        .group_by(Document.knowledge_base_id)
        .subquery()
    )
    rows = await session.execute(
        select(KnowledgeBase, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.knowledge_base_id == KnowledgeBase.id)
        .order_by(KnowledgeBase.name)
    )
    items = [
        KnowledgeBaseOut.model_validate(kb).model_copy(update={"documents": n}) for kb, n in rows
    ]
    return KnowledgeBaseList(items=items)


@router.post(
    "/api/knowledge-bases",
    status_code=status.HTTP_201_CREATED,
    summary="Create a knowledge base",
    responses=responses(409),
)
async def create_knowledge_base(
    body: KnowledgeBaseCreate, session: TenantSession, service: KnowledgeDep
) -> KnowledgeBaseOut:
    """A knowledge base embedded with this server's model."""
    kb = service.new_knowledge_base(body.name)
    session.add(kb)
    await commit_or_409(session, f"a knowledge base named {body.name!r} already exists")
    return KnowledgeBaseOut.model_validate(kb)


@router.post("/api/knowledge/search", summary="Search a knowledge base", responses=responses(404))
async def search(
    body: SearchRequest, session: TenantSession, principal: CurrentPrincipal, service: KnowledgeDep
) -> SearchResponse:
    """Hybrid search, as the agent runs it mid-call."""
    kb = await resolve_knowledge_base(session, service, body.knowledge_base_id, body.agent_id)
    try:
        hits = await service.search(principal.org_id, kb, body.query, k=body.k, mode=body.mode)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from exc
    return SearchResponse(knowledge_base_id=kb.id, items=hits)


async def resolve_knowledge_base(
    session: TenantSession,
    service: KnowledgeService,
    kb_id: uuid.UUID | None,
    agent_id: uuid.UUID | None = None,
) -> KnowledgeBase:
    """The knowledge base named, the agent's, or the organization's default."""
    if kb_id is not None:
        return await get_or_404(session, KnowledgeBase, kb_id, "knowledge base")
    if agent_id is not None:
        agent = await get_or_404(session, Agent, agent_id, "agent")
        if agent.knowledge_base_id is None:
            raise FieldValidationError("body.agent_id", "this agent has no knowledge base")
        return await get_or_404(session, KnowledgeBase, agent.knowledge_base_id, "knowledge base")
    return await service.default_knowledge_base(session)
