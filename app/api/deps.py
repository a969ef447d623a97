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

from app.api.proxy import client_address
from app.api.rate_limits import RateLimits, key_digest
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
    limits: RateLimits = request.app.state.rate_limits
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    # Failures are counted per client address and per presented credential: a guesser is
    # stopped whether it rotates keys from one address or one key across many addresses.
    counted = [("address", client_address(request, request.app.state.settings))]
    if credentials is not None:
        counted.append(("key", key_digest(credentials.credentials)))
    for identity in counted:
        await limits.check(limits.auth_failures, *identity)
    try:
        return await auth.authenticate(header)
    except AuthError as exc:
        if exc.status == 401:
            for identity in counted:
                await limits.hit(limits.auth_failures, *identity)
        raise HTTPException(exc.status, exc.message, {"WWW-Authenticate": "Bearer"}) from exc


async def tenant_session(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> AsyncIterator[AsyncSession]:
    """A session that sees only the principal's organization."""
    async with db_of(request).tenant(principal.org_id) as session:
        yield session


async def admin_principal(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """The caller, if an admin of its organization; else 403."""
    if not principal.is_admin:
        raise HTTPException(
            403,
            "only an organization admin may do this (your role is member): ask an admin, "
            "or use an API key an admin created",
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
AdminPrincipal = Annotated[Principal, Depends(admin_principal)]
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
RateLimitsDep = Annotated[RateLimits, Depends(_service("rate_limits", RateLimits))]


async def get_or_404(session: AsyncSession, model: type[Row], row_id: uuid.UUID, what: str) -> Row:
    """The row with `row_id` in the session's organization; another org's id is a plain 404."""
    column: Any = model.id  # type: ignore[attr-defined]
    row = await session.scalar(select(model).where(column == row_id))
    if row is None:
        raise HTTPException(404, f"{what} {row_id} not found")
    return row
