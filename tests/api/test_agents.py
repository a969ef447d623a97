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
    ],
    ids=["missing-name", "empty-name", "unknown-tool", "language", "tier", "extra", "too-long"],
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
