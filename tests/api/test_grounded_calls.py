"""A call's automatic context: the agent's knowledge base, looked up with the caller's words,
within the agent's passage count and token budget."""

from __future__ import annotations

import uuid

import pytest

from app.agents.directory import AgentDirectory
from app.services import Services
from tests.api.conftest import Tenant, agent_body
from tests.fixtures.kb_corpus import CORPUS

pytestmark = pytest.mark.integration

QUESTION = "how long do I have to send something back and get my money?"


async def agent_answering(org: Tenant, services: Services, number: str, **knowledge: object):  # type: ignore[no-untyped-def]
    kb = (await org.client.post("/api/knowledge-bases", json={"name": f"Handbook {number}"})).json()
    await org.client.post(
        "/api/documents/upload",
        files={"file": ("handbook.md", CORPUS.encode(), "text/markdown")},
        data={"knowledge_base_id": kb["id"]},
    )
    await services.knowledge.ingestor.drain()
    body = agent_body(number, knowledge_base_id=kb["id"], knowledge=knowledge)
    agent = (await org.client.post("/api/agents", json=body)).json()
    await org.client.post("/api/phone-numbers", json={"number": number, "agent_id": agent["id"]})
    profile = await AgentDirectory(services.db, services.settings).for_number(number)
    assert profile is not None and profile.knowledge_base_id == kb["id"]
    return profile


async def test_the_callers_words_find_the_passage(org_a: Tenant, services: Services) -> None:
    profile = await agent_answering(org_a, services, "+14155550301", top_k=2)
    sources = await services.agent_knowledge.context(profile, QUESTION)
    assert 1 <= len(sources) <= 2
    assert "Returns and refunds" in (sources[0].heading or "")
    assert sources[0].document_name == "handbook.md" and "30 days" in sources[0].text


async def test_words_about_something_else_bring_no_passages(
    org_a: Tenant, services: Services
) -> None:
    """A home-services handbook has nothing on kayaks or opening hours: its nearest sections
    are not put in front of the model, which would read them out instead of answering."""
    profile = await agent_answering(org_a, services, "+14155550305")
    for words in ("Do you sell kayaks as well?", "Could I speak to somebody in person?"):
        assert await services.agent_knowledge.context(profile, words) == [], words
    # A question a section answers in other words still finds it.
    found = await services.agent_knowledge.context(profile, "is there an extra charge at night?")
    assert found and "Emergency" in (found[0].heading or "")


async def test_budget_and_switch_are_honoured(org_a: Tenant, services: Services) -> None:
    tight = await agent_answering(org_a, services, "+14155550302", top_k=5, token_budget=50)
    # The best passage always fits, whatever the budget.
    assert len(await services.agent_knowledge.context(tight, QUESTION)) == 1
    off = await agent_answering(org_a, services, "+14155550303", auto_context=False)
    assert await services.agent_knowledge.context(off, QUESTION) == []


async def test_agent_knowledge_settings_are_validated(org_a: Tenant) -> None:
    response = await org_a.client.post("/api/agents", json=agent_body(knowledge={"top_k": 0}))
    assert response.status_code == 422
    fields = [f["field"] for f in response.json()["error"]["fields"]]
    assert fields == ["body.knowledge.top_k"]


async def test_context_is_the_orgs_own_even_when_remembered(
    org_a: Tenant, org_b: Tenant, services: Services
) -> None:
    profile = await agent_answering(org_a, services, "+14155550304")
    assert profile.org_id is not None and profile.knowledge_base_id is not None
    org, kb = uuid.UUID(profile.org_id), uuid.UUID(profile.knowledge_base_id)
    settings = profile.knowledge
    # The first turn looks the knowledge base up and remembers its model; later turns do not.
    assert await services.knowledge.context(org, kb, QUESTION, settings)
    assert await services.knowledge.context(org, kb, QUESTION, settings)
    # Another organization naming the same knowledge base gets nothing, before or after.
    assert await services.knowledge.context(org_b.org_id, kb, QUESTION, settings) == []


async def test_an_agent_without_a_knowledge_base_answers_from_the_orgs_default_one(
    org_a: Tenant, org_b: Tenant, services: Services
) -> None:
    """Documents uploaded without naming a knowledge base go to the org's default one; search
    uses it, and so do the org's agents that name none, on a call and in the playground."""
    upload = await org_a.client.post(
        "/api/documents/upload",
        files={"file": ("handbook.md", CORPUS.encode(), "text/markdown")},
    )
    assert upload.status_code == 202, upload.text
    default_kb = upload.json()["knowledge_base_id"]
    await services.knowledge.ingestor.drain()
    directory = AgentDirectory(services.db, services.settings)
    for org, number in ((org_a, "+14155550311"), (org_b, "+14155550312")):
        agent = (await org.client.post("/api/agents", json=agent_body(number))).json()
        await org.client.post(
            "/api/phone-numbers", json={"number": number, "agent_id": agent["id"]}
        )
    on_a = await directory.for_number("+14155550311")
    assert on_a is not None and on_a.knowledge_base_id == default_kb
    sources = await services.agent_knowledge.context(on_a, QUESTION)
    assert sources and "30 days" in sources[0].text
    assert await directory.by_id(str(org_a.org_id), on_a.id) == on_a
    # Org B has no default knowledge base of its own, and never gets A's.
    on_b = await directory.for_number("+14155550312")
    assert on_b is not None and on_b.knowledge_base_id is None
    assert await services.agent_knowledge.context(on_b, QUESTION) == []
