"""`/api/agents`: the happy path and every way a body can be wrong."""

from __future__ import annotations

import uuid

import pytest

from app.db.models import KnowledgeBase
from app.services import Services
from tests.api.conftest import Tenant, agent_body, assert_error

pytestmark = pytest.mark.integration


async def test_create_read_update_delete(org_a: Tenant) -> None:
    client = org_a.client
    created = await client.post("/api/agents", json=agent_body(tools=["end_call"]))
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["voice_id"] == "joe" and agent["language"] == "en"
    assert agent["llm_policy"] == {
        "default_tier": "slm",
        "max_tier": "pro",
        "escalate_when_unsure": True,
        "min_confidence": 0.6,
    }
    assert agent["tools"] == ["end_call"] and agent["phone_numbers"] == []

    got = await client.get(f"/api/agents/{agent['id']}")
    assert got.json() == agent

    patched = await client.patch(
        f"/api/agents/{agent['id']}", json={"greeting": "Hello!", "enabled": False}
    )
    assert patched.status_code == 200
    assert patched.json()["greeting"] == "Hello!" and patched.json()["enabled"] is False
    assert patched.json()["system_prompt"] == agent["system_prompt"]

    listed = await client.get("/api/agents")
    assert [a["id"] for a in listed.json()["items"]] == [agent["id"]]

    assert (await client.delete(f"/api/agents/{agent['id']}")).status_code == 204
    assert_error(await client.get(f"/api/agents/{agent['id']}"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"system_prompt": "x", "greeting": "x"}, "body.name"),
        (agent_body(name=""), "body.name"),
        (agent_body(tools=["launch_rockets"]), "body.tools.0"),
        (agent_body(language="english"), "body.language"),
        (agent_body(llm_policy={"default_tier": "huge"}), "body.llm_policy.default_tier"),
        (agent_body(colour="blue"), "body.colour"),
        (agent_body(greeting="x" * 1001), "body.greeting"),
        (
            agent_body(llm_policy={"default_tier": "pro", "max_tier": "slm"}),
            "body.llm_policy",
        ),
        (
            agent_body(tool_settings={"transfer_number": "555"}),
            "body.tool_settings.transfer_number",
        ),
        (
            agent_body(tool_settings={"urls": {"check_order_status": "not a url"}}),
            "body.tool_settings.urls.check_order_status",
        ),
        (agent_body(flow={"nodes": []}), "body.flow.start"),
    ],
    ids=[
        "missing-name",
        "empty-name",
        "unknown-tool",
        "language",
        "tier",
        "extra",
        "too-long",
        "tier-order",
        "transfer-number",
        "tool-url",
        "flow-start",
    ],
)
async def test_invalid_bodies_get_field_errors(org_a: Tenant, body: dict, field: str) -> None:
    error = assert_error(await org_a.client.post("/api/agents", json=body), 422, "invalid_request")
    assert field in [f["field"] for f in error["fields"]], error  # type: ignore[union-attr]


async def test_malformed_json_is_422(org_a: Tenant) -> None:
    response = await org_a.client.post(
        "/api/agents", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "invalid_request")


async def test_null_for_a_required_field_is_422(org_a: Tenant) -> None:
    agent = (await org_a.client.post("/api/agents", json=agent_body())).json()
    error = assert_error(
        await org_a.client.patch(f"/api/agents/{agent['id']}", json={"name": None}),
        422,
        "invalid_request",
    )
    assert error["fields"] == [{"field": "body.name", "message": "cannot be null"}]


async def test_duplicate_name_is_409(org_a: Tenant, org_b: Tenant) -> None:
    assert (await org_a.client.post("/api/agents", json=agent_body("Twin"))).status_code == 201
    assert_error(await org_a.client.post("/api/agents", json=agent_body("Twin")), 409, "conflict")
    # Names are per organization.
    assert (await org_b.client.post("/api/agents", json=agent_body("Twin"))).status_code == 201


async def test_knowledge_base_must_be_the_orgs_own(
    org_a: Tenant, org_b: Tenant, services: Services
) -> None:
    async with services.db.tenant(org_b.org_id) as session:
        kb = KnowledgeBase(name="B docs", embedding_model="minilm", dimension=384)
        session.add(kb)
        await session.commit()
    for kb_id in (kb.id, uuid.uuid4()):
        error = assert_error(
            await org_a.client.post("/api/agents", json=agent_body(knowledge_base_id=str(kb_id))),
            422,
            "invalid_request",
        )
        assert error["fields"][0]["field"] == "body.knowledge_base_id"  # type: ignore[index]
    ok = await org_b.client.post("/api/agents", json=agent_body(knowledge_base_id=str(kb.id)))
    assert ok.status_code == 201 and ok.json()["knowledge_base_id"] == str(kb.id)


async def test_bad_id_in_path_is_422(org_a: Tenant) -> None:
    assert_error(await org_a.client.get("/api/agents/not-a-uuid"), 422, "invalid_request")


BRANCHING_FLOW = {
    "start": "menu",
    "nodes": [
        {
            "id": "menu",
            "instructions": "Ask: orders or hours?",
            "transitions": [
                {"to": "orders", "when": "asks about an order", "dtmf": "1"},
                {"to": "hours", "when": "asks about hours", "dtmf": "2"},
            ],
        },
        {"id": "orders", "instructions": "Help with the order.", "tools": ["check_order_status"]},
        {"id": "hours", "instructions": "We open 7 to 6."},
    ],
}


async def test_flow_and_tool_settings_round_trip(org_a: Tenant) -> None:
    body = agent_body(
        tools=["check_order_status", "transfer_to_agent"],
        tool_settings={
            "urls": {"check_order_status": "https://orders.example.com/api"},
            "transfer_number": "+15550100",
        },
        flow=BRANCHING_FLOW,
    )
    created = await org_a.client.post("/api/agents", json=body)
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["flow"] == BRANCHING_FLOW
    assert agent["tool_settings"] == {
        "urls": {"check_order_status": "https://orders.example.com/api"},
        "transfer_number": "+15550100",
    }


async def test_an_invalid_flow_reports_every_problem_with_its_path(org_a: Tenant) -> None:
    flow = {
        "start": "menu",
        "nodes": [
            {
                "id": "menu",
                "instructions": "Ask.",
                "transitions": [{"to": "billing", "when": "bills"}, {"to": "loop", "when": "x"}],
            },
            {"id": "loop", "instructions": "Loop.", "transitions": [{"to": "loop2", "when": "y"}]},
            {"id": "loop2", "instructions": "Back.", "transitions": [{"to": "loop", "when": "z"}]},
            {"id": "orphan", "instructions": "Nobody comes here."},
        ],
    }
    agent = (await org_a.client.post("/api/agents", json=agent_body())).json()
    error = assert_error(
        await org_a.client.patch(f"/api/agents/{agent['id']}", json={"flow": flow}),
        422,
        "invalid_request",
    )
    messages = {f["field"]: f["message"] for f in error["fields"]}  # type: ignore[union-attr]
    assert "body.flow.nodes[0].transitions[0].to" in messages  # no node 'billing'
    assert any("orphan" in m and "reached" in m for m in messages.values())
    assert any("loop" in m and "end node" in m for m in messages.values())
    unchanged = (await org_a.client.get(f"/api/agents/{agent['id']}")).json()
    assert unchanged["flow"] is None


async def test_put_replaces_the_agent_and_resets_what_it_leaves_out(org_a: Tenant) -> None:
    client = org_a.client
    body = agent_body(
        voice_id="amy",
        tools=["check_order_status"],
        flow=BRANCHING_FLOW,
        knowledge={"top_k": 5, "token_budget": 800, "auto_context": False},
        enabled=False,
    )
    agent = (await client.post("/api/agents", json=body)).json()

    replaced = await client.put(f"/api/agents/{agent['id']}", json=agent_body("Reception"))
    assert replaced.status_code == 200, replaced.text
    new = replaced.json()
    assert new["id"] == agent["id"] and new["created_at"] == agent["created_at"]
    assert new["name"] == "Reception"
    assert new["voice_id"] == "joe" and new["tools"] == [] and new["flow"] is None
    assert new["knowledge"] == {
        "top_k": 3,
        "token_budget": 400,
        "auto_context": True,
        "max_distance": 0.65,
    }
    assert new["enabled"] is True
    assert (await client.get(f"/api/agents/{agent['id']}")).json() == new


async def test_put_on_another_orgs_agent_is_404_and_changes_nothing(
    org_a: Tenant, org_b: Tenant
) -> None:
    agent = (await org_a.client.post("/api/agents", json=agent_body())).json()
    for agent_id in (agent["id"], str(uuid.uuid4())):
        assert_error(
            await org_b.client.put(f"/api/agents/{agent_id}", json=agent_body("Hijacked")),
            404,
            "not_found",
        )
    assert (await org_a.client.get(f"/api/agents/{agent['id']}")).json() == agent


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Reception", "system_prompt": "x"}, "body.greeting"),
        (agent_body(voice_id=None), "body.voice_id"),
        (agent_body(tools=["launch_rockets"]), "body.tools.0"),
        (agent_body(flow={"nodes": []}), "body.flow.start"),
    ],
    ids=["missing-greeting", "null-voice", "unknown-tool", "invalid-flow"],
)
async def test_put_with_an_invalid_body_is_422_and_changes_nothing(
    org_a: Tenant, body: dict, field: str
) -> None:
    agent = (await org_a.client.post("/api/agents", json=agent_body())).json()
    error = assert_error(
        await org_a.client.put(f"/api/agents/{agent['id']}", json=body), 422, "invalid_request"
    )
    assert field in [f["field"] for f in error["fields"]], error  # type: ignore[union-attr]
    assert (await org_a.client.get(f"/api/agents/{agent['id']}")).json() == agent


async def test_put_to_a_taken_name_is_409(org_a: Tenant) -> None:
    await org_a.client.post("/api/agents", json=agent_body("Twin"))
    agent = (await org_a.client.post("/api/agents", json=agent_body("Other"))).json()
    assert_error(
        await org_a.client.put(f"/api/agents/{agent['id']}", json=agent_body("Twin")),
        409,
        "conflict",
    )
