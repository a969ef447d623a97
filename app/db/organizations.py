"""Creating organizations outside the API (the CLI's `velox org create`)."""

from __future__ import annotations

import uuid

from app.auth.api_keys import mint_api_key
from app.db.database import Database
from app.db.models import ApiKey, Organization
from app.settings import Settings


async def create_org_with_key(
    settings: Settings, name: str, key_name: str
) -> tuple[uuid.UUID, str]:
    """A new organization and the secret of its first API key."""
    from app.db.setup import database_url

    db = Database(database_url(settings), pool_size=1)
    minted = mint_api_key()
    try:
        async with db.system() as session:
            org = Organization(name=name)
            session.add(org)
            await session.flush()
            session.add(
                ApiKey(org_id=org.id, name=key_name, prefix=minted.prefix, key_hash=minted.key_hash)
            )
            await session.commit()
            return org.id, minted.secret
    finally:
        await db.close()
