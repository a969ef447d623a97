"""Getting a database ready: find (or start) the server, migrate it, seed the demo org.

Safe to run from several processes at once (the `velox serve` driver and each ingress replica):
the embedded server is started under a file lock and migrations under an advisory lock.
"""

from __future__ import annotations

import asyncio
import logging

from app.db import migrate
from app.db.database import Database
from app.db.demo import ensure_demo_org
from app.db.embedded import start_embedded_postgres
from app.settings import Settings

logger = logging.getLogger(__name__)


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded server's URL (started if it is not running)."""
    if settings.database.database_url:
        return settings.database.database_url
    return start_embedded_postgres(settings.server.velox_data_dir / "postgres")


async def open_database(settings: Settings) -> Database:
    """A migrated database with the demo organization in place when it is enabled."""
    url = await asyncio.to_thread(database_url, settings)
    await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url, pool_size=settings.database.database_pool_size)
    if settings.demo_agent_enabled:
        await ensure_demo_org(db, settings)
    return db
