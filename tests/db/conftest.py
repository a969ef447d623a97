"""A Database on the session's Postgres, and two organizations per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from app.db.database import Database
from app.db.models import Organization


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url, pool_size=2)
    try:
        yield database
    finally:
        await database.close()


async def new_org(db: Database, name: str = "Org") -> uuid.UUID:
    """A fresh organization (each test makes its own, so tests never share rows)."""
    async with db.system() as session:
        org = Organization(name=name)
        session.add(org)
        await session.commit()
        return org.id
