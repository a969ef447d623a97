"""The demo organization: on the embedded default it answers numbers nobody has claimed, so
`make run` then `velox call` works out of the box. Seeded from the settings' agent."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from app.db.database import Database
from app.db.models import Agent, Organization
from app.settings import Settings

DEMO_ORG_NAME = "Demo"


async def ensure_demo_org(db: Database, settings: Settings) -> uuid.UUID:
    """Create the demo organization and its agent unless they exist; return the org's id."""
    async with db.system() as session:
        org_id = await session.scalar(select(Organization.id).where(Organization.is_demo))
        if org_id is None:
            org = Organization(name=DEMO_ORG_NAME, is_demo=True)
            session.add(org)
            await session.flush()
            org_id = org.id
        has_agent = await session.scalar(select(Agent.id).where(Agent.org_id == org_id).limit(1))
        if has_agent is None:
            session.add(
                Agent(
                    org_id=org_id,
                    name=settings.telephony.velox_agent_name,
                    system_prompt=settings.telephony.velox_system_prompt,
                    greeting=settings.telephony.velox_greeting,
                    voice_id=settings.speech.velox_voice,
                )
            )
        await session.commit()
    return org_id


async def demo_org_id(db: Database) -> uuid.UUID | None:
    """The demo organization's id, if there is one (the deployment's tool URLs serve it)."""
    async with db.system() as session:
        return await session.scalar(select(Organization.id).where(Organization.is_demo))
