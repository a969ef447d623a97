"""Alembic migrations, run in-process: on start-up, by `velox db`, and by the tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

from app.db.database import async_url

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_KEY = 0x56454C4F58  # "VELOX"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _run(url: str, action: str, revision: str) -> None:
    async def go() -> None:
        engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
        try:
            async with engine.begin() as conn:
                # Replicas starting together would race through the same migration.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
                await conn.run_sync(lambda sync: getattr(command, action)(_config(sync), revision))
        finally:
            await engine.dispose()

    # Its own event loop: callers inside a running loop use asyncio.to_thread(upgrade, url).
    asyncio.run(go())


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema up to `revision`."""
    _run(url, "upgrade", revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Take the schema down to `revision`."""
    _run(url, "downgrade", revision)
