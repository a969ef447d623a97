"""`/api/conversations`: newest first, keyset pages, filters, and one call's transcript."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.db.models import Agent, Conversation, Message
from app.services import Services
from tests.api.conftest import Tenant, assert_error

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


async def seed(services: Services, org_id: uuid.UUID, count: int) -> list[Conversation]:
    """`count` conversations a minute apart, alternating agents and statuses; two share a time."""
    async with services.db.tenant(org_id) as session:
        agents = [
            Agent(name=f"Agent {i}", system_prompt="x", greeting="x", voice_id="joe")
            for i in range(2)
        ]
        session.add_all(agents)
        await session.flush()
        rows = [
            Conversation(
                agent_id=agents[i % 2].id,
                call_sid=f"CA{uuid.uuid4().hex}",
                status="completed" if i % 3 else "failed",
                started_at=T0 + timedelta(minutes=min(i, count - 2)),
            )
            for i in range(count)
        ]
        session.add_all(rows)
        await session.flush()
        session.add_all(
            [
                Message(conversation_id=rows[0].id, seq=2, role="agent", text="We open at 7."),
                Message(conversation_id=rows[0].id, seq=1, role="caller", text="When do you open?"),
            ]
        )
        await session.commit()
    return rows


async def test_pages_cover_everything_newest_first(org_a: Tenant, services: Services) -> None:
    rows = await seed(services, org_a.org_id, 25)
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = (await org_a.client.get("/api/conversations", params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 25 and len({c["id"] for c in seen}) == 25
    times = [(c["started_at"], c["id"]) for c in seen]
    assert times == sorted(times, reverse=True)
    assert {c["id"] for c in seen} == {str(r.id) for r in rows}


async def test_filters(org_a: Tenant, services: Services) -> None:
    rows = await seed(services, org_a.org_id, 12)
    agent = rows[0].agent_id
    by_agent = (
        await org_a.client.get("/api/conversations", params={"agent_id": str(agent)})
    ).json()
    assert {c["agent_id"] for c in by_agent["items"]} == {str(agent)}
    assert len(by_agent["items"]) == 6
    failed = (await org_a.client.get("/api/conversations", params={"status": "failed"})).json()
    assert len(failed["items"]) == 4 and {c["status"] for c in failed["items"]} == {"failed"}
    window = {
        "started_after": (T0 + timedelta(minutes=3)).isoformat(),
        "started_before": (T0 + timedelta(minutes=6)).isoformat(),
    }
    ranged = (await org_a.client.get("/api/conversations", params=window)).json()
    assert len(ranged["items"]) == 3


async def test_detail_has_the_transcript_in_order(org_a: Tenant, services: Services) -> None:
    rows = await seed(services, org_a.org_id, 2)
    detail = (await org_a.client.get(f"/api/conversations/{rows[0].id}")).json()
    assert [m["text"] for m in detail["messages"]] == ["When do you open?", "We open at 7."]
    assert detail["call_sid"] == rows[0].call_sid
    assert_error(await org_a.client.get(f"/api/conversations/{uuid.uuid4()}"), 404, "not_found")


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 1000}, {"cursor": "garbage!"}, {"status": "happy"}, {"agent_id": "x"}],
    ids=["limit-0", "limit-1000", "cursor", "status", "agent"],
)
async def test_bad_query_parameters_are_422(org_a: Tenant, params: dict) -> None:
    assert_error(
        await org_a.client.get("/api/conversations", params=params), 422, "invalid_request"
    )
