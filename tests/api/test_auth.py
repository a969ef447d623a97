"""Bearer credentials: org API keys and Clerk session JWTs verified against a local JWKS."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import DASHBOARD, Tenant, assert_error
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
