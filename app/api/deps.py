"""What routes depend on, as `Annotated` aliases: the caller's organization, a database session
scoped to it, and the process's services (each put on `app.state` by `Services.attach`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection

from app.auth.principal import Authenticator, AuthError, Principal
from app.call_state.store import CallStateStore
from app.calls.hub import CallHub
from app.conversation.engine import ConversationEngine
from app.conversation.grounding import AgentKnowledge
from app.db.database import Database
from app.engines import Engines
from app.observability.metrics import Metrics
from app.rag.service import KnowledgeService
from app.settings import Settings
from app.tools.registry import ToolBox
from app.transcripts.store import ConversationStore

Row = TypeVar("Row")

# auto_error=False: a missing header gets our 401 envelope, not FastAPI's 403.
bearer = HTTPBearer(
    auto_error=False,
    description="An org API key (vx_…) or a Clerk session JWT whose active organization is used",
)


def db_of(connection: HTTPConnection) -> Database:
    """The process's database."""
    db: Database = connection.app.state.db
    return db


def settings_of(connection: HTTPConnection) -> Settings:
    """The process's settings."""
    settings: Settings = connection.app.state.settings
    return settings


def hub_of(connection: HTTPConnection) -> CallHub:
    """This replica's live calls."""
    hub: CallHub = connection.app.state.hub
    return hub


def engines_of(connection: HTTPConnection) -> Engines:
    """The STT, LLM and TTS engines calls use."""
    engines: Engines = connection.app.state.engines
    return engines


def metrics_of(connection: HTTPConnection) -> Metrics:
    """The velox_* metrics."""
    metrics: Metrics = connection.app.state.metrics
    return metrics


def toolbox_of(connection: HTTPConnection) -> ToolBox:
    """The tools agents may call."""
    toolbox: ToolBox = connection.app.state.toolbox
    return toolbox


def conversation_of(connection: HTTPConnection) -> ConversationEngine:
    """The engine that runs agent turns, on calls and in the playground alike."""
    conversation: ConversationEngine = connection.app.state.conversation
    return conversation


def knowledge_of(connection: HTTPConnection) -> KnowledgeService:
    """Knowledge bases: ingestion and search."""
    knowledge: KnowledgeService = connection.app.state.knowledge
    return knowledge


def agent_knowledge_of(connection: HTTPConnection) -> AgentKnowledge:
    """The passages an agent's turn is grounded in."""
    agent_knowledge: AgentKnowledge = connection.app.state.agent_knowledge
    return agent_knowledge


def transcripts_of(connection: HTTPConnection) -> ConversationStore:
    """Stored conversations."""
    transcripts: ConversationStore = connection.app.state.transcripts
    return transcripts


def call_state_of(connection: HTTPConnection) -> CallStateStore:
    """Call state every ingress replica shares."""
    calls: CallStateStore = connection.app.state.calls
    return calls


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The authenticated organization, or 401/403."""
    auth: Authenticator = request.app.state.auth
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    try:
        return await auth.authenticate(header)
    except AuthError as exc:
        raise HTTPException(exc.status, exc.message, {"WWW-Authenticate": "Bearer"}) from exc


async def tenant_session(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> AsyncIterator[AsyncSession]:
    """A session that sees only the principal's organization."""
    async with db_of(request).tenant(principal.org_id) as session:
        yield session


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
TenantSession = Annotated[AsyncSession, Depends(tenant_session)]
DatabaseDep = Annotated[Database, Depends(db_of)]
SettingsDep = Annotated[Settings, Depends(settings_of)]
CallHubDep = Annotated[CallHub, Depends(hub_of)]
EnginesDep = Annotated[Engines, Depends(engines_of)]
MetricsDep = Annotated[Metrics, Depends(metrics_of)]
ToolBoxDep = Annotated[ToolBox, Depends(toolbox_of)]
ConversationDep = Annotated[ConversationEngine, Depends(conversation_of)]
KnowledgeDep = Annotated[KnowledgeService, Depends(knowledge_of)]
AgentKnowledgeDep = Annotated[AgentKnowledge, Depends(agent_knowledge_of)]
TranscriptsDep = Annotated[ConversationStore, Depends(transcripts_of)]
CallStateDep = Annotated[CallStateStore, Depends(call_state_of)]


async def get_or_404(session: AsyncSession, model: type[Row], row_id: uuid.UUID, what: str) -> Row:
    """The row with `row_id` in the session's organization; another org's id is a plain 404."""
    column: Any = model.id  # type: ignore[attr-defined]
    row = await session.scalar(select(model).where(column == row_id))
    if row is None:
        raise HTTPException(404, f"{what} {row_id} not found")
    return row
