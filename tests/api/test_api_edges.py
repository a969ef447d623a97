"""The API as a whole, as an anonymous or hostile client meets it: every body is bounded before
it is read, text the database cannot store is a 422 naming the field, and failed sign-ins,
webhooks, stream handshakes and playground turns are rate limited across replicas."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from app.api.rate_limits import RateLimited, RateLimits, TokenBudget
from app.settings import Settings
from tests.api.conftest import Tenant, agent_body, assert_error


async def test_a_body_over_the_limit_is_refused_before_authentication(
    anonymous: httpx.AsyncClient,
) -> None:
    big = b'{"name": "' + b"x" * (1024 * 1024 + 1) + b'"}'
    response = await anonymous.post(
        "/api/agents", content=big, headers={"content-type": "application/json"}
    )
    error = assert_error(response, 413, "too_large")
    assert "1024 KB" in str(error["message"])


async def test_a_chunked_body_is_cut_off_at_the_limit(org_a: Tenant) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b" " * 32 * 1024  # no Content-Length: the body is streamed

    response = await org_a.client.post(
        "/api/agents", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "too_large")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"name": "Front\\u0000desk", "system_prompt": "p", "greeting": "g"}', "body.name"),
        ('{"name": "n", "system_prompt": "p", "greeting": "\\ud83d"}', "body.greeting"),
        (
            '{"name": "n", "system_prompt": "p", "greeting": "g", "flow": {"nodes": ["a\\u0000"]}}',
            "body.flow.nodes.0",
        ),
    ],
    ids=["nul", "lone-surrogate", "nested"],
)
async def test_unstorable_text_is_a_422_naming_the_field(
    org_a: Tenant, body: str, field: str
) -> None:
    response = await org_a.client.post(
        "/api/agents", content=body.encode(), headers={"content-type": "application/json"}
    )
    error = assert_error(response, 422, "invalid_request")
    assert [f["field"] for f in error["fields"]] == [field]  # type: ignore[index]


async def test_a_nul_in_the_query_is_a_422(org_a: Tenant) -> None:
    response = await org_a.client.get("/api/conversations", params={"cursor": "abc\x00"})
    error = assert_error(response, 422, "invalid_request")
    assert error["fields"] == [  # type: ignore[comparison-overlap]
        {"field": "query.cursor", "message": error["fields"][0]["message"]}  # type: ignore[index]
    ]


async def test_the_stored_agent_is_unharmed_by_refused_text(org_a: Tenant) -> None:
    created = await org_a.client.post("/api/agents", json=agent_body("Desk"))
    agent_id = created.json()["id"]
    response = await org_a.client.patch(
        f"/api/agents/{agent_id}",
        content=b'{"name": "\\u0000"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert (await org_a.client.get(f"/api/agents/{agent_id}")).json()["name"] == "Desk"


def strict(settings: Settings, **limits: object) -> RateLimits:
    """Rate limits as `limits` say, over the test's Redis."""
    return RateLimits.from_settings(
        settings.model_copy(update={"limits": settings.limits.model_copy(update=limits)})
    )


def client_at(app: FastAPI, address: str, key: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 4000))
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=headers)


def fresh_address() -> str:
    """An address no other test has counted against (Redis outlives each test)."""
    return f"198.51.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


async def test_failed_sign_ins_are_throttled_per_address(
    app: FastAPI, org_a: Tenant, settings: Settings
) -> None:
    app.state.rate_limits = strict(settings, rate_limit_auth_failures="3/minute")
    address = fresh_address()
    for _ in range(3):
        async with client_at(app, address, f"vx_{uuid.uuid4().hex}") as guesser:
            assert (await guesser.get("/api/agents")).status_code == 401
    async with client_at(app, address, f"vx_{uuid.uuid4().hex}") as guesser:
        refused = await guesser.get("/api/agents")
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    # The same address with the right key waits too: a guesser learns nothing from a 200.
    async with client_at(app, address, org_a.key) as owner:
        assert (await owner.get("/api/agents")).status_code == 429
    async with client_at(app, fresh_address(), org_a.key) as elsewhere:
        assert (await elsewhere.get("/api/agents")).status_code == 200


async def test_one_key_guessed_from_many_addresses_is_throttled(
    app: FastAPI, settings: Settings
) -> None:
    app.state.rate_limits = strict(settings, rate_limit_auth_failures="3/minute")
    key = f"vx_{uuid.uuid4().hex}"
    statuses = []
    for _ in range(4):
        async with client_at(app, fresh_address(), key) as guesser:
            statuses.append((await guesser.get("/api/agents")).status_code)
    assert statuses == [401, 401, 401, 429]


async def test_replicas_share_the_count_through_redis(settings: Settings) -> None:
    one = strict(settings, rate_limit_webhooks="2/minute")
    two = strict(settings, rate_limit_webhooks="2/minute")
    address = fresh_address()
    await one.hit(one.webhooks, address)
    await two.hit(two.webhooks, address)
    with pytest.raises(RateLimited) as refused:
        await one.hit(one.webhooks, address)
    assert refused.value.status_code == 429 and refused.value.retry_after_s >= 1


async def test_the_playground_token_budget_is_per_org(settings: Settings) -> None:
    limits = strict(settings, playground_tokens_per_day=100)
    spent, fresh = TokenBudget(limits, str(uuid.uuid4())), TokenBudget(limits, str(uuid.uuid4()))
    await spent.check()
    await spent.spend(60)
    await spent.check()
    await spent.spend(300)  # one long turn runs past the budget: counted all the same
    with pytest.raises(RateLimited) as refused:
        await spent.check()
    assert "token budget" in str(refused.value.detail)
    await fresh.check()  # another org's budget is its own


async def test_playground_turns_are_rate_limited(
    org_a: Tenant, app: FastAPI, settings: Settings
) -> None:
    app.state.rate_limits = strict(settings, rate_limit_playground_turns="2/minute")
    agent = (await org_a.client.post("/api/agents", json=agent_body("Chat"))).json()
    body = {"agent_id": agent["id"], "message": "hello"}
    for _ in range(2):
        assert (await org_a.client.post("/api/playground/chat", json=body)).status_code == 200
    refused = await org_a.client.post("/api/playground/chat", json=body)
    assert_error(refused, 429, "rate_limited")
    assert "retry-after" in refused.headers
