"""Organization B can neither list, read, change nor delete organization A's rows.

One table covers every `/api` route; `test_every_route_is_covered` fails when a new route is
added without a case here, so isolation cannot be forgotten.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.call_state.store import LiveCall
from app.db.models import Conversation
from app.services import Services
from tests.api.conftest import Tenant, agent_body

pytestmark = pytest.mark.integration


@dataclass
class Case:
    method: str
    path: str  # {agent}, {number}, {key}, {conversation}, {kb}, {document}: org A's ids
    expect: int  # what org B gets
    body: dict[str, Any] | None = None
    leaks_in_list: bool = False  # a list: A's ids must not appear in it
    form: dict[str, str] | None = None  # multipart upload fields (with a small file)


CASES = [
    Case("GET", "/api/agents", 200, leaks_in_list=True),
    Case("POST", "/api/agents", 201, body=agent_body("Front desk")),  # A's name is free in B
    Case("GET", "/api/agents/{agent}", 404),
    Case("PATCH", "/api/agents/{agent}", 404, body={"name": "Hijacked"}),
    Case("PUT", "/api/agents/{agent}", 404, body=agent_body("Hijacked")),
    Case("DELETE", "/api/agents/{agent}", 404),
    Case("GET", "/api/phone-numbers", 200, leaks_in_list=True),
    Case("POST", "/api/phone-numbers", 422, body={"number": "+14155550999", "agent_id": "{agent}"}),
    Case("GET", "/api/phone-numbers/{number}", 404),
    Case("PATCH", "/api/phone-numbers/{number}", 404, body={"agent_id": None}),
    Case("DELETE", "/api/phone-numbers/{number}", 404),
    Case("GET", "/api/conversations", 200, leaks_in_list=True),
    Case("GET", "/api/conversations/{conversation}", 404),
    Case("GET", "/api/calls/live", 200, leaks_in_list=True),
    Case("GET", "/api/api-keys", 200, leaks_in_list=True),
    Case("POST", "/api/api-keys", 201, body={"name": "B's own"}),
    Case("DELETE", "/api/api-keys/{key}", 404),
    Case("POST", "/api/documents/upload", 404, form={"knowledge_base_id": "{kb}"}),
    Case("GET", "/api/documents", 200, leaks_in_list=True),
    Case("GET", "/api/documents/{document}", 404),
    Case("DELETE", "/api/documents/{document}", 404),
    Case("GET", "/api/knowledge-bases", 200, leaks_in_list=True),
    Case("POST", "/api/knowledge-bases", 201, body={"name": "Manuals"}),  # A's name, B's own KB
    Case("POST", "/api/knowledge/search", 404, body={"query": "x", "knowledge_base_id": "{kb}"}),
    Case("POST", "/api/playground/chat", 404, body={"agent_id": "{agent}", "message": "hi"}),
]


@pytest.fixture
async def a_rows(org_a: Tenant, services: Services) -> dict[str, str]:
    """One of everything in organization A."""
    client = org_a.client
    agent = (await client.post("/api/agents", json=agent_body("Front desk"))).json()["id"]
    number = (
        await client.post(
            "/api/phone-numbers",
            json={"number": f"+1415{uuid.uuid4().int % 10**7:07d}", "agent_id": agent},
        )
    ).json()["id"]
    key = (await client.post("/api/api-keys", json={"name": "A's spare"})).json()["id"]
    kb = (await client.post("/api/knowledge-bases", json={"name": "Manuals"})).json()["id"]
    document = (
        await client.post(
            "/api/documents/upload",
            files={"file": ("a.md", b"# Secret\n\nOrg A's recipe.", "text/markdown")},
            data={"knowledge_base_id": kb},
        )
    ).json()["id"]
    await services.knowledge.ingestor.drain()
    async with services.db.tenant(org_a.org_id) as session:
        convo = Conversation(agent_id=uuid.UUID(agent), call_sid=f"CA{uuid.uuid4().hex}")
        session.add(convo)
        await session.commit()
    call_sid = f"CA{uuid.uuid4().hex}"
    await services.calls.put(
        LiveCall(call_sid, str(org_a.org_id), agent, "replica-1", "+1555", "+1556", time.time())
    )
    return {
        "agent": agent,
        "number": number,
        "key": key,
        "conversation": str(convo.id),
        "call": call_sid,
        "kb": kb,
        "document": document,
    }


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case", CASES, ids=[f"{c.method} {c.path}" for c in CASES])
async def test_org_b_cannot_touch_org_a(
    case: Case, a_rows: dict[str, str], org_a: Tenant, org_b: Tenant
) -> None:
    before = await snapshot(org_a)
    if case.form is not None:
        response = await org_b.client.request(
            case.method,
            fill(case.path, a_rows),
            data=fill(case.form, a_rows),
            files={"file": ("b.md", b"# B\n\nOrg B's words.", "text/markdown")},
        )
    else:
        response = await org_b.client.request(
            case.method, fill(case.path, a_rows), json=fill(case.body, a_rows)
        )
    assert response.status_code == case.expect, response.text
    if case.leaks_in_list:
        assert not set(a_rows.values()) & set(response.text.split('"')), response.text
    assert await snapshot(org_a) == before  # nothing of A's changed


async def snapshot(tenant: Tenant) -> dict[str, Any]:
    """Everything org A can see through the API."""
    paths = [
        "/api/agents",
        "/api/phone-numbers",
        "/api/conversations",
        "/api/api-keys",
        "/api/calls/live",
    ]
    state = {}
    for path in paths:
        response = await tenant.client.get(path)
        assert response.status_code == 200
        items = response.json()["items"]
        for item in items:
            item.pop("last_used_at", None)  # using A's key to look is not a change
            item.pop("updated_at", None)
        state[path] = items
    return state


def test_every_route_is_covered(app: FastAPI) -> None:
    routes = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/")
        for method in route.methods
    }
    covered = {(c.method, c.path.replace("{agent}", "{agent_id}")) for c in CASES}
    normalise = {
        "{number}": "{number_id}",
        "{key}": "{key_id}",
        "{conversation}": "{conversation_id}",
        "{document}": "{document_id}",
    }
    for old, new in normalise.items():
        covered = {(m, p.replace(old, new)) for m, p in covered}
    assert routes - covered == set(), "add an isolation case for each new /api route"
