"""`/api/api-keys`: a key is shown once, works at once, and stops working when revoked."""

from __future__ import annotations

import httpx
import pytest

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
