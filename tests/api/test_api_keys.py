"""`/api/api-keys`: a key is shown once, works at once, and stops working when revoked or
expired; it names its maker and acts with the maker's role."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from app.auth.api_keys import mint_api_key
from app.db.models import ApiKey, Member
from app.services import Services
from tests.api.conftest import Tenant, assert_error

pytestmark = pytest.mark.integration


async def test_create_use_revoke(org_a: Tenant, anonymous: httpx.AsyncClient) -> None:
    created = await org_a.client.post("/api/api-keys", json={"name": "ci"})
    assert created.status_code == 201
    key = created.json()
    assert key["key"].startswith("vx_") and key["key"].startswith(key["prefix"])

    listed = (await org_a.client.get("/api/api-keys")).json()["items"]
    assert {k["name"] for k in listed} == {"ci", "test"}
    assert all("key" not in k for k in listed)

    headers = {"Authorization": f"Bearer {key['key']}"}
    assert (await anonymous.get("/api/agents", headers=headers)).status_code == 200
    used = next(
        k for k in (await org_a.client.get("/api/api-keys")).json()["items"] if k["id"] == key["id"]
    )
    assert used["last_used_at"] is not None

    assert (await org_a.client.delete(f"/api/api-keys/{key['id']}")).status_code == 204
    assert_error(await anonymous.get("/api/agents", headers=headers), 401, "unauthorized")
    revoked = next(
        k for k in (await org_a.client.get("/api/api-keys")).json()["items"] if k["id"] == key["id"]
    )
    assert revoked["revoked_at"] is not None


async def test_name_is_required(org_a: Tenant) -> None:
    assert_error(await org_a.client.post("/api/api-keys", json={}), 422, "invalid_request")


async def test_owner_and_expiry_are_listed(org_a: Tenant) -> None:
    expires = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    created = await org_a.client.post(
        "/api/api-keys", json={"name": "ci", "expires_at": expires.isoformat()}
    )
    assert created.status_code == 201, created.text
    maker = await org_a.client.get("/api/api-keys")
    listed = {k["name"]: k for k in maker.json()["items"]}

    assert datetime.fromisoformat(listed["ci"]["expires_at"]) == expires
    # Made by org A's key (whose own maker is the operator: null).
    assert listed["ci"]["created_by"] == listed["test"]["id"]
    assert listed["test"]["created_by"] is None and listed["test"]["expires_at"] is None


@pytest.mark.parametrize(
    ("expires_at", "why"),
    [
        ("2001-01-01T00:00:00Z", "in the future"),
        ("2999-01-01T00:00:00", "timezone"),  # which midnight?
        ("soon", "valid datetime"),
    ],
    ids=["past", "naive", "not-a-date"],
)
async def test_expiry_must_be_a_future_moment(org_a: Tenant, expires_at: str, why: str) -> None:
    error = assert_error(
        await org_a.client.post("/api/api-keys", json={"name": "x", "expires_at": expires_at}),
        422,
        "invalid_request",
    )
    [field] = error["fields"]  # type: ignore[misc]
    assert field["field"] == "body.expires_at" and why in field["message"]


async def test_an_expired_key_is_refused(
    org_a: Tenant, anonymous: httpx.AsyncClient, services: Services
) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    key = (await org_a.client.post("/api/api-keys", json={"name": "t", "expires_at": later})).json()
    headers = {"Authorization": f"Bearer {key['key']}"}
    assert (await anonymous.get("/api/agents", headers=headers)).status_code == 200

    # The hour passes (the database is the clock's stand-in: the key's expiry moves back).
    async with services.db.system() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(key["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()

    error = assert_error(await anonymous.get("/api/agents", headers=headers), 401, "unauthorized")
    assert "API key expired" in str(error["message"])


async def test_a_key_made_for_a_member_acts_as_a_member(
    org_a: Tenant, anonymous: httpx.AsyncClient, services: Services
) -> None:
    # Keys made before roles counted may name a member as their maker: they get no admin rights.
    minted = mint_api_key()
    async with services.db.system() as session:
        session.add(Member(org_id=org_a.org_id, user_id="user_mo", role="member"))
        session.add(
            ApiKey(
                org_id=org_a.org_id,
                name="mo's",
                prefix=minted.prefix,
                key_hash=minted.key_hash,
                created_by="user_mo",
            )
        )
        await session.commit()
    headers = {"Authorization": f"Bearer {minted.secret}"}

    assert (await anonymous.get("/api/agents", headers=headers)).status_code == 200
    error = assert_error(
        await anonymous.post("/api/api-keys", headers=headers, json={"name": "more"}),
        403,
        "forbidden",
    )
    assert "admin" in str(error["message"])
