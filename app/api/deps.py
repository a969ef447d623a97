"""What routes depend on, as `Annotated` aliases: the caller's organization, a database session
scoped to it, and the process's services (each put on `app.state` by `Services.attach`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
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
T = TypeVar("T")

# auto_error=False: a missing header gets our 401 envelope, not FastAPI's 403.
bearer = HTTPBearer(
    auto_error=False,
    description="An org API key (vx_…) or a Clerk session JWT whose active organization is used",
)


def _service(name: str, kind: type[T]) -> Callable[[HTTPConnection], T]:
    """A dependency for the process's `name` service, as `Services.attach` put it on app.state
    (`kind` types it)."""

    def service_of(connection: HTTPConnection) -> T:
        service: T = getattr(connection.app.state, name)
        return service

    service_of.__name__ = f"{name}_of"  # how FastAPI and tracebacks name the dependency
    return service_of


db_of = _service("db", Database)


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
SettingsDep = Annotated[Settings, Depends(_service("settings", Settings))]
CallHubDep = Annotated[CallHub, Depends(_service("hub", CallHub))]
EnginesDep = Annotated[Engines, Depends(_service("engines", Engines))]
MetricsDep = Annotated[Metrics, Depends(_service("metrics", Metrics))]
ToolBoxDep = Annotated[ToolBox, Depends(_service("toolbox", ToolBox))]
ConversationDep = Annotated[
    ConversationEngine, Depends(_service("conversation", ConversationEngine))
]
KnowledgeDep = Annotated[KnowledgeService, Depends(_service("knowledge", KnowledgeService))]
AgentKnowledgeDep = Annotated[AgentKnowledge, Depends(_service("agent_knowledge", AgentKnowledge))]
TranscriptsDep = Annotated[ConversationStore, Depends(_service("transcripts", ConversationStore))]
CallStateDep = Annotated[CallStateStore, Depends(_service("calls", CallStateStore))]


async def get_or_404(session: AsyncSession, model: type[Row], row_id: uuid.UUID, what: str) -> Row:
    """The row with `row_id` in the session's organization; another org's id is a plain 404."""
    column: Any = model.id  # type: ignore[attr-defined]
    row = await session.scalar(select(model).where(column == row_id))
    if row is None:
        raise HTTPException(404, f"{what} {row_id} not found")
    return row
