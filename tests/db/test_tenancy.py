"""The one place that scopes queries: a tenant session sees, changes and creates only its own
organization's rows, and a session without a scope cannot touch tenant tables at all."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import selectinload

from app.db.database import Database
from app.db.models import Agent, Conversation, Message, PhoneNumber
from app.db.tenancy import UnscopedQueryError
from tests.db.conftest import new_org

pytestmark = pytest.mark.integration


def agent(name: str, **kw: object) -> Agent:
    return Agent(name=name, system_prompt="Be brief.", greeting="Hi.", voice_id="joe", **kw)


async def test_each_org_sees_only_its_rows(db: Database) -> None:
    a, b = await new_org(db, "A"), await new_org(db, "B")
    async with db.tenant(a) as session:
        session.add(agent("Alpha"))
        await session.commit()
    async with db.tenant(b) as session:
        session.add(agent("Beta"))
        await session.commit()
        names = (await session.scalars(select(Agent.name))).all()
        assert names == ["Beta"]
        # Aggregates and joins are scoped too.
        assert await session.scalar(select(func.count()).select_from(Agent)) == 1
        joined = await session.scalars(
            select(PhoneNumber.number).join(Agent, Agent.id == PhoneNumber.agent_id)
        )
        assert joined.all() == []


async def test_updates_and_deletes_cannot_reach_another_org(db: Database) -> None:
    a, b = await new_org(db), await new_org(db)
    async with db.tenant(a) as session:
        row = agent("Keep me")
        session.add(row)
        await session.commit()
    async with db.tenant(b) as session:
        await session.execute(update(Agent).where(Agent.id == row.id).values(name="Hijacked"))
        await session.execute(delete(Agent).where(Agent.id == row.id))
        await session.commit()
    async with db.tenant(a) as session:
        assert await session.scalar(select(Agent.name).where(Agent.id == row.id)) == "Keep me"


async def test_new_rows_are_stamped_and_foreign_rows_refused(db: Database) -> None:
    a, b = await new_org(db), await new_org(db)
    async with db.tenant(a) as session:
        mine = agent("Stamped")
        session.add(mine)
        await session.commit()
        assert mine.org_id == a
    async with db.tenant(a) as session:
        session.add(agent("Smuggled", org_id=b))
        with pytest.raises(UnscopedQueryError):
            await session.flush()
    async with db.tenant(a) as session:
        with pytest.raises(UnscopedQueryError):
            await session.execute(
                insert(Agent).values(
                    org_id=b, name="Bulk", system_prompt="x", greeting="x", voice_id="joe"
                )
            )


async def test_relationship_loads_stay_in_scope(db: Database) -> None:
    a = await new_org(db)
    async with db.tenant(a) as session:
        convo = Conversation(channel="phone")
        session.add(convo)
        await session.flush()
        session.add(Message(conversation_id=convo.id, seq=1, role="caller", text="Hello"))
        await session.commit()
    async with db.tenant(a) as session:
        loaded = await session.scalar(
            select(Conversation)
            .where(Conversation.id == convo.id)
            .options(selectinload(Conversation.messages))
        )
        assert loaded is not None and [m.text for m in loaded.messages] == ["Hello"]


async def test_unscoped_session_refuses_tenant_queries(db: Database) -> None:
    async with db._sessions() as session:  # neither tenant() nor system()
        with pytest.raises(UnscopedQueryError):
            await session.execute(select(Agent))


async def test_system_session_must_name_the_org(db: Database) -> None:
    a = await new_org(db)
    async with db.system() as session:
        session.add(agent("Nobody's"))
        with pytest.raises(UnscopedQueryError):
            await session.flush()
    async with db.system() as session:
        session.add(agent("Explicit", org_id=a))
        await session.commit()
