"""`/api/phone-numbers`: attach numbers to agents; a number belongs to one organization."""

from __future__ import annotations

import pytest

from tests.api.conftest import Tenant, agent_body, assert_error

pytestmark = pytest.mark.integration


async def test_attach_route_release(org_a: Tenant) -> None:
    client = org_a.client
    front = (await client.post("/api/agents", json=agent_body("Front"))).json()
    back = (await client.post("/api/agents", json=agent_body("Back"))).json()
    created = await client.post(
        "/api/phone-numbers", json={"number": "+14155550101", "agent_id": front["id"]}
    )
    assert created.status_code == 201, created.text
    number = created.json()
    assert (await client.get(f"/api/agents/{front['id']}")).json()["phone_numbers"] == [
        "+14155550101"
    ]
    moved = await client.patch(f"/api/phone-numbers/{number['id']}", json={"agent_id": back["id"]})
    assert moved.json()["agent_id"] == back["id"]
    assert (await client.get(f"/api/agents/{front['id']}")).json()["phone_numbers"] == []
    listed = await client.get("/api/phone-numbers")
    assert [n["number"] for n in listed.json()["items"]] == ["+14155550101"]
    assert (await client.delete(f"/api/phone-numbers/{number['id']}")).status_code == 204
    assert (await client.get("/api/phone-numbers")).json()["items"] == []


async def test_deleting_an_agent_unassigns_its_numbers(org_a: Tenant) -> None:
    agent = (await org_a.client.post("/api/agents", json=agent_body())).json()
    number = (
        await org_a.client.post(
            "/api/phone-numbers", json={"number": "+14155550102", "agent_id": agent["id"]}
        )
    ).json()
    await org_a.client.delete(f"/api/agents/{agent['id']}")
    assert (await org_a.client.get(f"/api/phone-numbers/{number['id']}")).json()["agent_id"] is None


async def test_a_number_already_attached_is_409(org_a: Tenant, org_b: Tenant) -> None:
    body = {"number": "+14155550103"}
    assert (await org_a.client.post("/api/phone-numbers", json=body)).status_code == 201
    for client in (org_a.client, org_b.client):
        error = assert_error(await client.post("/api/phone-numbers", json=body), 409, "conflict")
        assert "+14155550103" in str(error["message"])


@pytest.mark.parametrize("number", ["4155550104", "+0155550104", "+1 415 555", "tel:+1415"])
async def test_numbers_must_be_e164(org_a: Tenant, number: str) -> None:
    error = assert_error(
        await org_a.client.post("/api/phone-numbers", json={"number": number}),
        422,
        "invalid_request",
    )
    assert error["fields"][0]["field"] == "body.number"  # type: ignore[index]


async def test_agent_must_be_the_orgs_own(org_a: Tenant, org_b: Tenant) -> None:
    theirs = (await org_b.client.post("/api/agents", json=agent_body())).json()
    error = assert_error(
        await org_a.client.post(
            "/api/phone-numbers", json={"number": "+14155550105", "agent_id": theirs["id"]}
        ),
        422,
        "invalid_request",
    )
    assert error["fields"][0]["field"] == "body.agent_id"  # type: ignore[index]
