"""Bearer credentials: org API keys and Clerk session JWTs verified against a local JWKS; a flood
of bad tokens costs no flood of key fetches; organization roles decide who manages keys and
deletes agents and numbers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.api.conftest import DASHBOARD, Tenant, agent_body, assert_error
from tests.fakes.clerk_server import FakeClerk, generate_rsa_key

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        bearer("vx_not-a-real-key"),
        bearer("not-a-jwt"),
    ],
    ids=["missing", "empty", "basic", "unknown-key", "garbage-jwt"],
)
async def test_bad_credentials_get_401(anonymous: httpx.AsyncClient, headers) -> None:  # type: ignore[no-untyped-def]
    response = await anonymous.get("/api/agents", headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_api_key_reaches_its_org(org_a: Tenant) -> None:
    response = await org_a.client.get("/api/agents")
    assert response.status_code == 200 and response.json() == {"items": []}


async def test_clerk_session_provisions_the_org_once(
    anonymous: httpx.AsyncClient, clerk: FakeClerk
) -> None:
    token = clerk.session_token(org_id="org_clerk_1", user_id="user_7", azp=DASHBOARD)
    created = await anonymous.post(
        "/api/agents",
        headers=bearer(token),
        json={"name": "Desk", "system_prompt": "Be brief.", "greeting": "Hi."},
    )
    assert created.status_code == 201, created.text
    # A second member of the same Clerk org sees the same agents.
    other = clerk.session_token(org_id="org_clerk_1", user_id="user_8", azp=DASHBOARD)
    listed = await anonymous.get("/api/agents", headers=bearer(other))
    assert [a["name"] for a in listed.json()["items"]] == ["Desk"]
    # A different Clerk org does not.
    stranger = clerk.session_token(org_id="org_clerk_2", azp=DASHBOARD)
    assert (await anonymous.get("/api/agents", headers=bearer(stranger))).json()["items"] == []


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"expires_in": -120}, "expired"),
        ({"issuer": "https://evil.example"}, "issuer"),
        ({"azp": "https://evil.example"}, "authorized part"),
        ({"key": generate_rsa_key()}, "signature"),
    ],
    ids=["expired", "issuer", "azp", "signature"],
)
async def test_invalid_clerk_tokens_get_401(
    anonymous: httpx.AsyncClient, clerk: FakeClerk, claims: dict, words: str
) -> None:
    token = clerk.session_token(**{"azp": DASHBOARD, **claims})
    error = assert_error(
        await anonymous.get("/api/agents", headers=bearer(token)), 401, "unauthorized"
    )
    assert words in str(error["message"]).lower()


async def test_clerk_session_without_an_org_is_403(
    anonymous: httpx.AsyncClient, clerk: FakeClerk
) -> None:
    token = clerk.session_token(org_id=None, azp=DASHBOARD)
    error = assert_error(
        await anonymous.get("/api/agents", headers=bearer(token)), 403, "forbidden"
    )
    assert "organization" in str(error["message"])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The failed-authentication limit would stop a flood at the door; these tests measure what
    # reaches the verifier behind it.
    return settings.replace(rate_limit_auth_failures="100000/minute")


async def test_a_flood_of_bad_tokens_costs_at_most_one_key_fetch(
    anonymous: httpx.AsyncClient, clerk: FakeClerk
) -> None:
    forger = generate_rsa_key()
    before = clerk.jwks_requests
    bad = [
        *(clerk.session_token(key=forger, kid=f"ins_{i:04d}", azp=DASHBOARD) for i in range(150)),
        *(clerk.session_token(key=forger, azp=DASHBOARD) for _ in range(30)),  # known kid
        *("eyJhbGciOiJSUzI1NiJ9.e30." + "x" * i for i in range(20)),  # garbage
    ]

    for start in range(0, len(bad), 25):  # 25 requests in flight at a time
        responses = await asyncio.gather(
            *(anonymous.get("/api/agents", headers=bearer(t)) for t in bad[start : start + 25])
        )
        for response in responses:
            assert_error(response, 401, "unauthorized")

    assert clerk.jwks_requests - before <= 1


async def clerk_client(app: FastAPI, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=bearer(token)
    )


@pytest.mark.parametrize(
    "member_claims",
    [
        {"org_role": "org:member"},  # v2: o.rol = "member"
        {"org_role": "org:member", "version": 1},  # v1: org_role = "org:member"
        {"org_role": "org:billing_manager"},  # a custom role is no admin
        {"org_role": None},
    ],
    ids=["v2-member", "v1-member", "custom-role", "no-role"],
)
async def test_only_org_admins_manage_keys_and_delete_agents_and_numbers(
    app: FastAPI, clerk: FakeClerk, member_claims: dict[str, Any]
) -> None:
    org = f"org_roles_{uuid.uuid4().hex[:8]}"
    admin_token = clerk.session_token(org_id=org, user_id="user_admin", azp=DASHBOARD)
    member_token = clerk.session_token(
        org_id=org, user_id="user_member", azp=DASHBOARD, **member_claims
    )
    async with (
        await clerk_client(app, admin_token) as admin,
        await clerk_client(app, member_token) as member,
    ):
        # Members work with agents and numbers...
        agent = await member.post("/api/agents", json=agent_body())
        assert agent.status_code == 201, agent.text
        number = await member.post("/api/phone-numbers", json={"number": "+14155550180"})
        assert number.status_code == 201, number.text
        key = await admin.post("/api/api-keys", json={"name": "deploy"})
        assert key.status_code == 201, key.text
        # ...but only admins manage keys and delete agents or numbers.
        refused = [
            await member.post("/api/api-keys", json={"name": "mine"}),
            await member.delete(f"/api/api-keys/{key.json()['id']}"),
            await member.delete(f"/api/agents/{agent.json()['id']}"),
            await member.delete(f"/api/phone-numbers/{number.json()['id']}"),
        ]
        for response in refused:
            error = assert_error(response, 403, "forbidden")
            assert "admin" in str(error["message"])
        assert (await member.get("/api/api-keys")).status_code == 200  # reading is fine

        done = [
            await admin.delete(f"/api/api-keys/{key.json()['id']}"),
            await admin.delete(f"/api/agents/{agent.json()['id']}"),
            await admin.delete(f"/api/phone-numbers/{number.json()['id']}"),
        ]
        assert [r.status_code for r in done] == [204, 204, 204]


async def test_a_key_acts_with_its_makers_role_and_follows_a_demotion(
    app: FastAPI, clerk: FakeClerk, anonymous: httpx.AsyncClient
) -> None:
    org = f"org_demote_{uuid.uuid4().hex[:8]}"
    as_admin = clerk.session_token(org_id=org, user_id="user_dana", azp=DASHBOARD)
    async with await clerk_client(app, as_admin) as dana:
        made = (await dana.post("/api/api-keys", json={"name": "dana's"})).json()
        assert made["created_by"] == "user_dana"
    async with await clerk_client(app, made["key"]) as key:
        child = await key.post("/api/api-keys", json={"name": "made by a key"})
        assert child.status_code == 201, child.text  # an admin's key acts as an admin
        assert child.json()["created_by"] == made["id"]
        agent = (await key.post("/api/agents", json=agent_body())).json()

        # Dana becomes a member in Clerk; her next sign-in says so, and her keys follow.
        as_member = clerk.session_token(
            org_id=org, user_id="user_dana", org_role="org:member", azp=DASHBOARD
        )
        assert (await anonymous.get("/api/agents", headers=bearer(as_member))).status_code == 200
        assert_error(await key.delete(f"/api/agents/{agent['id']}"), 403, "forbidden")
        grandchild = bearer(child.json()["key"])
        assert_error(
            await anonymous.delete(f"/api/agents/{agent['id']}", headers=grandchild),
            403,
            "forbidden",
        )
