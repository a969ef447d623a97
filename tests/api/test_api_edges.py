"""The API as a whole, as an anonymous or hostile client meets it: every body is bounded before
it is read, text the database cannot store is a 422 naming the field, and failed sign-ins,
webhooks, stream handshakes and playground turns are rate limited across replicas."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from app.api.rate_limits import RateLimited, RateLimits, TokenBudget
from app.services import Services
from app.settings import Settings
from tests import factories
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


async def test_failed_sign_ins_are_throttled_per_address(
    anonymous: httpx.AsyncClient, org_a: Tenant, services: Services
) -> None:
    limit = int(services.settings.limits.rate_limit_auth_failures.split("/")[0])
    for _ in range(limit):
        bad = await anonymous.get(
            "/api/agents", headers={"Authorization": f"Bearer vx_{uuid.uuid4().hex}"}
        )
        assert bad.status_code == 401
    refused = await anonymous.get(
        "/api/agents", headers={"Authorization": f"Bearer vx_{uuid.uuid4().hex}"}
    )
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    # The same address with the right key waits too: a guesser learns nothing from a 200.
    assert (await org_a.client.get("/api/agents")).status_code == 429


async def test_one_key_guessed_from_many_addresses_is_throttled(
    app: FastAPI, services: Services
) -> None:
    limit = int(services.settings.limits.rate_limit_auth_failures.split("/")[0])
    key = f"vx_{uuid.uuid4().hex}"
    statuses = []
    for n in range(limit + 1):
        transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n + 1}", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.get("/api/agents", headers={"Authorization": f"Bearer {key}"})
            statuses.append(response.status_code)
    assert statuses == [401] * limit + [429]


async def test_replicas_share_the_count_through_redis(settings: Settings) -> None:
    strict = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"rate_limit_webhooks": "2/minute"})}
    )
    one, two = RateLimits.from_settings(strict), RateLimits.from_settings(strict)
    address = f"203.0.113.{uuid.uuid4().int % 250}"
    await one.hit(one.webhooks, address)
    await two.hit(two.webhooks, address)
    with pytest.raises(RateLimited) as refused:
        await one.hit(one.webhooks, address)
    assert refused.value.status_code == 429 and refused.value.retry_after_s >= 1


async def test_the_playground_token_budget_is_per_org(settings: Settings) -> None:
    small = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"playground_tokens_per_day": 100})}
    )
    limits = RateLimits.from_settings(small)
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
    org_a: Tenant, app: FastAPI, services: Services
) -> None:
    app.state.rate_limits = RateLimits.from_settings(
        factories.settings(rate_limit_playground_turns="2/minute")
    )
    agent = (await org_a.client.post("/api/agents", json=agent_body("Chat"))).json()
    body = {"agent_id": agent["id"], "message": "hello"}
    for _ in range(2):
        assert (await org_a.client.post("/api/playground/chat", json=body)).status_code == 200
    refused = await org_a.client.post("/api/playground/chat", json=body)
    assert_error(refused, 429, "rate_limited")
    assert "retry-after" in refused.headers
