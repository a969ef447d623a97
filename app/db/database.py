"""Engine and sessions: `Database.tenant(org_id)` for a request, `Database.system()` otherwise."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.db.tenancy import ORG_KEY, SYSTEM_KEY, ScopedSession

# Postgres rolled the whole transaction back (deadlock detected, serialization failure): running
# it again from the start is safe and usually succeeds.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_retryable(exc: BaseException) -> bool:
    """Whether `exc` is a transaction Postgres aborted only to break a conflict."""
    if not isinstance(exc, DBAPIError):
        return False
    # SQLAlchemy's asyncpg adapter carries the driver's error as the cause.
    errors = (exc.orig, getattr(exc.orig, "__cause__", None))
    return any(getattr(e, "sqlstate", None) in RETRYABLE_SQLSTATES for e in errors)


def async_url(url: str) -> str:
    """`postgresql://…` (as Cloud SQL and psql write it) → the asyncpg dialect SQLAlchemy needs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """One connection pool per process; sessions are cheap and short."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = async_url(url)
        self.engine: AsyncEngine = create_async_engine(
            self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, echo=echo
        )
        self._sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=ScopedSession
        )

    @asynccontextmanager
    async def tenant(self, org_id: uuid.UUID) -> AsyncIterator[AsyncSession]:
        """A session that only ever sees and writes `org_id`'s rows."""
        async with self._sessions(info={ORG_KEY: org_id}) as session:
            yield session

    @asynccontextmanager
    async def system(self) -> AsyncIterator[AsyncSession]:
        """A session across organizations; every query in it must name its org explicitly."""
        async with self._sessions(info={SYSTEM_KEY: True}) as session:
            yield session

    async def close(self) -> None:
        """Close the pool."""
        await self.engine.dispose()
