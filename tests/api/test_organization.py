"""`/api/organization` and the payment-data setting it holds: on by default, it cuts card
numbers and keyed-in digits from playground transcripts (and the model's prompt), and reaches
calls through the agent directory; an organization may turn it off for itself only."""

from __future__ import annotations

import uuid

import httpx

from app.agents.directory import AgentDirectory
from app.auth.api_keys import mint_api_key
from app.db.models import ApiKey, Member, PhoneNumber
from app.privacy import CARD_NUMBER, MASKED_KEY_PRESS, SECURITY_CODE
from app.services import Services
from app.settings import Settings
from tests.api.conftest import Tenant, agent_body, assert_error
from tests.fakes import FakeLLM

CARD_SAID = "my card is 4242 4242 4242 4242 and the security code is 123"
REDACTED = f"my card is {CARD_NUMBER} and the security code is {SECURITY_CODE}"


async def make_agent(tenant: Tenant) -> str:
    created = await tenant.client.post("/api/agents", json=agent_body())
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def chat(tenant: Tenant, agent: str, conversation: str | None = None, **body: object) -> str:
    response = await tenant.client.post(
        "/api/playground/chat", json={"agent_id": agent, "conversation_id": conversation, **body}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["conversation_id"])


async def caller_texts(tenant: Tenant, conversation: str) -> list[str]:
    stored = (await tenant.client.get(f"/api/conversations/{conversation}")).json()
    return [m["text"] for m in stored["messages"] if m["role"] == "caller"]


def fake_llm(services: Services) -> FakeLLM:
    llm = services.engines.llm
    assert isinstance(llm, FakeLLM)
    llm.replies = ["Thanks."] * 20
    return llm


async def test_the_setting_is_on_by_default_and_each_org_changes_its_own(
    org_a: Tenant, org_b: Tenant
) -> None:
    shown = await org_a.client.get("/api/organization")
    assert shown.status_code == 200, shown.text
    assert shown.json()["id"] == str(org_a.org_id)
    assert shown.json()["redact_payment_data"] is True

    changed = await org_a.client.patch("/api/organization", json={"redact_payment_data": False})
    assert changed.status_code == 200 and changed.json()["redact_payment_data"] is False
    assert (await org_a.client.get("/api/organization")).json()["redact_payment_data"] is False
    assert (await org_b.client.get("/api/organization")).json()["redact_payment_data"] is True


async def test_bad_changes_are_422_and_strangers_401(
    org_a: Tenant, anonymous: httpx.AsyncClient
) -> None:
    for body in ({"redact_payment_data": None}, {"redact_payment_data": "no"}, {"name": "x"}):
        assert_error(
            await org_a.client.patch("/api/organization", json=body), 422, "invalid_request"
        )
    assert (await org_a.client.get("/api/organization")).json()["redact_payment_data"] is True
    assert_error(await anonymous.get("/api/organization"), 401, "unauthorized")


async def test_only_an_admin_turns_it_off(
    org_a: Tenant, anonymous: httpx.AsyncClient, services: Services
) -> None:
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
    member = {"Authorization": f"Bearer {minted.secret}"}
    assert (await anonymous.get("/api/organization", headers=member)).status_code == 200
    off = {"redact_payment_data": False}
    refused = await anonymous.patch("/api/organization", headers=member, json=off)
    assert_error(refused, 403, "forbidden")
    assert (await org_a.client.get("/api/organization")).json()["redact_payment_data"] is True


async def test_the_playground_stores_and_sends_redacted_text(
    org_a: Tenant, services: Services
) -> None:
    llm = fake_llm(services)
    agent = await make_agent(org_a)
    conversation = await chat(org_a, agent, message=CARD_SAID)
    assert llm.seen[-1][-1].content == REDACTED  # the model never saw the digits
    assert await caller_texts(org_a, conversation) == [REDACTED]


async def test_keys_pressed_in_a_row_are_stored_as_digits_no_more(
    org_a: Tenant, services: Services
) -> None:
    fake_llm(services)
    agent = await make_agent(org_a)
    conversation = await chat(org_a, agent, dtmf="4")
    for digit in "242":
        await chat(org_a, agent, conversation, dtmf=digit)
    stored = await caller_texts(org_a, conversation)
    assert stored[0] == "(The caller pressed 4 on the keypad.)"  # a menu choice looks the same
    assert stored[1:] == [MASKED_KEY_PRESS] * 3


async def test_an_org_that_turns_it_off_keeps_what_was_said(
    org_a: Tenant, services: Services
) -> None:
    llm = fake_llm(services)
    agent = await make_agent(org_a)
    off = await org_a.client.patch("/api/organization", json={"redact_payment_data": False})
    assert off.status_code == 200, off.text
    conversation = await chat(org_a, agent, message=CARD_SAID)
    assert llm.seen[-1][-1].content == CARD_SAID
    assert await caller_texts(org_a, conversation) == [CARD_SAID]
    await chat(org_a, agent, conversation, dtmf="4")
    await chat(org_a, agent, conversation, dtmf="2")
    assert (await caller_texts(org_a, conversation))[-1] == "(The caller pressed 2 on the keypad.)"


async def test_calls_get_the_setting_with_their_agent(
    org_a: Tenant, org_b: Tenant, services: Services, settings: Settings
) -> None:
    agent_a, agent_b = await make_agent(org_a), await make_agent(org_b)
    await org_b.client.patch("/api/organization", json={"redact_payment_data": False})
    async with services.db.system() as session:
        for org, agent, number in (
            (org_a, agent_a, "+14155550181"),
            (org_b, agent_b, "+14155550182"),
        ):
            session.add(PhoneNumber(org_id=org.org_id, number=number, agent_id=uuid.UUID(agent)))
        await session.commit()
    directory = AgentDirectory(services.db, settings)

    by_number_a = await directory.for_number("+14155550181")
    by_number_b = await directory.for_number("+14155550182")
    assert by_number_a is not None and by_number_a.redact_payment_data is True
    assert by_number_b is not None and by_number_b.redact_payment_data is False
    by_id_b = await directory.by_id(str(org_b.org_id), agent_b)
    assert by_id_b is not None and by_id_b.redact_payment_data is False
