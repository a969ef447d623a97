"""What routes depend on: the caller's organization and a database session scoped to it."""

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
from app.db.database import Database

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


async def get_or_404(session: AsyncSession, model: type[Row], row_id: uuid.UUID, what: str) -> Row:
    """The row with `row_id` in the session's organization; another org's id is a plain 404."""
    column: Any = model.id  # type: ignore[attr-defined]
    row = await session.scalar(select(model).where(column == row_id))
    if row is None:
        raise HTTPException(404, f"{what} {row_id} not found")
    return row
