"""`POST /api/playground/chat`: the engine of calls, over HTTP, stored as playground
conversations. The model is scripted here (its real behaviour is tested in integration); the
tools run for real against the demo business API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.llm.base import LLMEvent, ToolCall
from app.services import Services
from app.settings import Settings
from tests.api.conftest import Tenant, agent_body, assert_error
from tests.fakes import FakeLLM

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings, demo_backend: str) -> Settings:
    # The deployment's URLs serve the demo org only; the tenants here bring their own, which
    # may be on this machine in development.
    return settings.replace(
        order_api_url=demo_backend,
        handoff_api_url=demo_backend,
        transfer_number="+15550100",
        velox_allow_private_tool_urls=True,
    )


def script(services: Services, *replies: str | ToolCall) -> FakeLLM:
    llm = services.engines.llm
    assert isinstance(llm, FakeLLM)
    llm.replies = list(replies)
    return llm


async def make_agent(tenant: Tenant, **fields: Any) -> str:
    created = await tenant.client.post("/api/agents", json=agent_body(**fields))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def chat(tenant: Tenant, agent: str, conversation: str | None = None, **body: Any) -> Any:
    response = await tenant.client.post(
        "/api/playground/chat",
        json={"agent_id": agent, "conversation_id": conversation, **body},
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_chat_is_a_stored_playground_conversation(
    org_a: Tenant, services: Services
) -> None:
    llm = script(services, "We open at seven.", "Until six.")
    agent = await make_agent(org_a)
    first = await chat(org_a, agent, message="Hi there!")
    assert first["reply"] == "We open at seven."
    assert first["tier"] == "slm" and first["routing"]["reasons"] == ["simple turn"]
    assert first["latency"]["total_s"] >= first["latency"]["first_text_s"] > 0
    second = await chat(org_a, agent, first["conversation_id"], message="And when do you close?")
    assert second["conversation_id"] == first["conversation_id"]
    # The second turn sees the first exchange.
    texts = [m.content for m in llm.seen[-1]]
    # As on a call, the model reads the agent's greeting first.
    assert texts[1:] == [
        "Hi, Acme here. How can I help?",
        "Hi there!",
        "We open at seven.",
        "And when do you close?",
    ]

    stored = (await org_a.client.get(f"/api/conversations/{first['conversation_id']}")).json()
    assert stored["channel"] == "playground"
    assert [(m["role"], m["text"]) for m in stored["messages"]] == [
        ("caller", "Hi there!"),
        ("agent", "We open at seven."),
        ("caller", "And when do you close?"),
        ("agent", "Until six."),
    ]


async def test_tool_calls_run_against_the_business_api_and_are_shown(
    org_a: Tenant, services: Services, demo_backend: str
) -> None:
    # The id said is the only one the call may carry: the call is made without the model
    # (ToolOffer.forced_call), and the tool says what it found in its own words.
    llm = script(services, "This means your order is on its way.")
    agent = await make_agent(
        org_a,
        tools=["check_order_status"],
        tool_settings={"urls": {"check_order_status": demo_backend}},
    )
    reply = await chat(org_a, agent, message="Where is my order A1042?")
    (run,) = reply["tool_calls"]
    assert run["name"] == "check_order_status" and run["ok"] is True
    assert run["result"]["order_id"] == "A1042" and run["result"]["status"] == "shipped"
    eta = run["result"]["eta"]
    assert reply["reply"] == f"Order A1042 has shipped with UPS and should arrive on {eta}."
    assert llm.seen == []  # neither for the call nor to read its result back
    stored = (await org_a.client.get(f"/api/conversations/{reply['conversation_id']}")).json()
    agent_message = stored["messages"][-1]
    assert agent_message["tool_calls"][0]["name"] == "check_order_status"


async def test_a_business_api_that_is_down_gets_a_spoken_fallback(
    org_a: Tenant, services: Services
) -> None:
    script(services, ToolCall("check_order_status", {"order_id": "A1042"}), "never said")
    agent = await make_agent(
        org_a,
        tools=["check_order_status"],
        # Nothing listens on the discard port: the agent's own order API is down.
        tool_settings={"urls": {"check_order_status": "http://127.0.0.1:9"}},
    )
    reply = await chat(org_a, agent, message="Where is my order A1042?")
    (run,) = reply["tool_calls"]
    assert run["ok"] is False and run["error"]
    assert reply["reply"] and reply["reply"] != "never said"


async def test_transfer_in_the_playground_is_simulated_and_notifies_the_handoff_api(
    org_a: Tenant, services: Services
) -> None:
    script(services, ToolCall("transfer_to_agent", {"reason": "wants a person"}), "Connecting.")
    agent = await make_agent(org_a, tools=["transfer_to_agent"])
    reply = await chat(org_a, agent, message="Can I talk to a real person?")
    (run,) = reply["tool_calls"]
    assert run["result"] == {
        "transferred": False,
        "simulated": True,
        "to": "+15550100",
        "summary": "wants a person",
    }


async def test_end_call_ends_the_conversation(org_a: Tenant, services: Services) -> None:
    script(services, ToolCall("end_call", {"reason": "done"}), "Goodbye!")
    agent = await make_agent(org_a, tools=["end_call"])
    reply = await chat(org_a, agent, message="That's all, bye!")
    assert reply["ended"] is True and reply["reply"] == "Goodbye!"
    again = await org_a.client.post(
        "/api/playground/chat",
        json={"agent_id": agent, "conversation_id": reply["conversation_id"], "message": "Hi?"},
    )
    assert_error(again, 409, "conflict")


async def test_streaming_sends_text_then_the_whole_reply(
    org_a: Tenant, services: Services, demo_backend: str
) -> None:
    script(services, ToolCall("check_order_status", {"order_id": "A1042"}), "It ships today.")
    told = "Order A1042 has shipped with UPS and should arrive on "
    agent = await make_agent(
        org_a,
        tools=["check_order_status"],
        tool_settings={"urls": {"check_order_status": demo_backend}},
    )
    async with org_a.client.stream(
        "POST",
        "/api/playground/chat",
        json={"agent_id": agent, "message": "Order A1042?", "stream": True},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = (await response.aread()).decode()
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ", 1)[1]))
        for block in body.strip().split("\n\n")
    ]
    names = [name for name, _ in events]
    assert names[0] == "tool" and names[-1] == "done" and "text" in names
    assert "".join(d["text"] for n, d in events if n == "text").startswith(told)
    assert events[-1][1]["reply"].startswith(told)


LINEAR = {
    "start": "name",
    "nodes": [
        {
            "id": "name",
            "instructions": "Ask for the caller's name.",
            "transitions": [{"to": "reason", "when": "the caller gave their name"}],
        },
        {
            "id": "reason",
            "instructions": "Ask why they are calling.",
            "transitions": [{"to": "confirm", "when": "the caller said why"}],
        },
        {"id": "confirm", "instructions": "Confirm and say goodbye.", "end": True},
    ],
}
BRANCHING = {
    "start": "menu",
    "nodes": [
        {
            "id": "menu",
            "instructions": "Ask: orders or opening hours?",
            "transitions": [
                {"to": "orders", "when": "the caller asks about an order"},
                {"to": "hours", "when": "the caller asks about opening hours"},
            ],
        },
        {"id": "orders", "instructions": "Help with the order.", "tools": ["check_order_status"]},
        {"id": "hours", "instructions": "We open 7 to 6."},
    ],
}
DTMF_MENU = {
    "start": "menu",
    "nodes": [
        {
            "id": "menu",
            "instructions": "Say: press 1 for orders, 2 for hours, 3 for a person.",
            "transitions": [
                {"to": "orders", "dtmf": "1"},
                {"to": "hours", "dtmf": "2"},
                {"to": "person", "dtmf": "3"},
            ],
        },
        {"id": "orders", "instructions": "Ask for the order number."},
        {"id": "hours", "instructions": "Say we open 7 to 6."},
        {"id": "person", "instructions": "Say a colleague will call back."},
    ],
}


async def test_linear_intake_flow_walks_to_the_end(org_a: Tenant, services: Services) -> None:
    llm = script(
        services,
        "May I have your name?",
        ToolCall("go_to_step", {"step": "reason"}),
        "Thanks Ann. Why are you calling?",
        ToolCall("go_to_step", {"step": "confirm"}),
        "Got it, we'll call you back. Goodbye!",
    )
    agent = await make_agent(org_a, flow=LINEAR)
    first = await chat(org_a, agent, message="Hello")
    assert first["node"] == "name"
    second = await chat(org_a, agent, first["conversation_id"], message="I'm Ann.")
    assert second["node"] == "reason" and second["tool_calls"][0]["name"] == "go_to_step"
    third = await chat(org_a, agent, first["conversation_id"], message="My cake order.")
    assert third["node"] == "confirm"
    assert "Confirm and say goodbye." in llm.seen[-1][0].content
    stored = (await org_a.client.get(f"/api/conversations/{first['conversation_id']}")).json()
    assert stored["current_node"] == "confirm"


async def test_branching_flow_takes_the_branch_the_caller_asks_for(
    org_a: Tenant, services: Services, demo_backend: str
) -> None:
    llm = script(
        services,
        "Orders or opening hours?",
        "It is on its way.",  # not asked: the call's id was said, and the tool says its result
    )
    agent = await make_agent(
        org_a,
        tools=["check_order_status"],
        flow=BRANCHING,
        tool_settings={"urls": {"check_order_status": demo_backend}},
    )
    first = await chat(org_a, agent, message="Hi")
    assert first["node"] == "menu"
    # The local model's turn: the caller's words ("order") pick the branch, and the orders
    # step's tool is what it may use.
    reply = await chat(org_a, agent, first["conversation_id"], message="Where is my order A1042?")
    assert [t["name"] for t in reply["tool_calls"]] == ["check_order_status"]
    assert reply["node"] == "orders" and reply["reply"].startswith("Order A1042 has shipped")
    assert len(llm.seen) == 1  # the menu's answer only


async def test_dtmf_menu_moves_on_the_key_pressed(org_a: Tenant, services: Services) -> None:
    llm = script(services, "Press 1 for orders, 2 for hours.", "We open 7 to 6.")
    agent = await make_agent(org_a, flow=DTMF_MENU)
    first = await chat(org_a, agent, message="Hi")
    second = await chat(org_a, agent, first["conversation_id"], dtmf="2")
    assert second["node"] == "hours"
    assert "Say we open 7 to 6." in llm.seen[-1][0].content
    assert llm.seen[-1][-1].content == "(The caller pressed 2 on the keypad.)"


@pytest.mark.parametrize(
    "body",
    [
        {"message": "hi", "dtmf": "1"},
        {},
        {"message": ""},
        {"dtmf": "x"},
    ],
    ids=["both", "neither", "empty", "bad-key"],
)
async def test_bad_bodies_are_422(org_a: Tenant, body: dict[str, Any]) -> None:
    agent = await make_agent(org_a)
    response = await org_a.client.post("/api/playground/chat", json={"agent_id": agent, **body})
    assert_error(response, 422, "invalid_request")


async def test_a_phone_conversation_cannot_be_continued_here(
    org_a: Tenant, services: Services
) -> None:
    from app.db.models import Conversation

    agent = await make_agent(org_a)
    async with services.db.tenant(org_a.org_id) as session:
        call = Conversation(agent_id=agent, channel="phone", status="in_progress")
        session.add(call)
        await session.commit()
    response = await org_a.client.post(
        "/api/playground/chat",
        json={"agent_id": agent, "conversation_id": str(call.id), "message": "hi"},
    )
    assert_error(response, 409, "conflict")


@pytest.mark.parametrize("stream", [False, True])
async def test_two_messages_racing_on_one_chat_store_one_exchange_and_a_409(
    org_a: Tenant, services: Services, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    """Both read the same transcript before either is answered; the second to be stored would
    answer a transcript that is gone, and is refused (409, or an `error` event once streaming)
    rather than stored after an exchange it never saw."""
    llm = script(services, "We open at seven.")
    agent = await make_agent(org_a)
    first = await chat(org_a, agent, message="Hi there!")
    entered = 0
    both_in = asyncio.Event()
    model_stream = llm.stream

    async def gated(*args: Any, **kwargs: Any) -> AsyncIterator[LLMEvent]:
        nonlocal entered
        entered += 1
        if entered == 2:
            both_in.set()
        await both_in.wait()
        async for event in model_stream(*args, **kwargs):
            yield event

    monkeypatch.setattr(llm, "stream", gated)
    answers = {"When do you close?": "Until six.", "Open on Sundays?": "Yes, on Sundays too."}
    llm.reply_for = lambda messages: answers[messages[-1].content]
    body = {"agent_id": agent, "conversation_id": first["conversation_id"], "stream": stream}
    responses = await asyncio.gather(
        org_a.client.post("/api/playground/chat", json={**body, "message": "When do you close?"}),
        org_a.client.post("/api/playground/chat", json={**body, "message": "Open on Sundays?"}),
    )
    if stream:  # the status line went out before the save: the outcome is the last event
        assert all(r.status_code == 200 for r in responses)
        last = [r.text.strip().split("\n\n")[-1] for r in responses]
        assert sorted(e.split("\n")[0] for e in last) == ["event: done", "event: error"]
        won = next(json.loads(e.split("data: ", 1)[1]) for e in last if "done" in e)["reply"]
    else:
        assert sorted(r.status_code for r in responses) == [200, 409]
        assert_error(next(r for r in responses if r.status_code == 409), 409, "conflict")
        won = next(r for r in responses if r.status_code == 200).json()["reply"]
    stored = (await org_a.client.get(f"/api/conversations/{first['conversation_id']}")).json()
    texts = [m["text"] for m in stored["messages"]]
    assert len(texts) == 4 and texts[3] == won
    assert (
        texts[2]
        == {"Until six.": "When do you close?", "Yes, on Sundays too.": "Open on Sundays?"}[won]
    )


async def test_another_orgs_playground_conversation_is_404(
    org_a: Tenant, org_b: Tenant, services: Services
) -> None:
    script(services, "Hello A.")
    a_chat = await chat(org_a, await make_agent(org_a), message="Hi")
    b_agent = await make_agent(org_b)
    response = await org_b.client.post(
        "/api/playground/chat",
        json={"agent_id": b_agent, "conversation_id": a_chat["conversation_id"], "message": "hi"},
    )
    assert_error(response, 404, "not_found")


async def test_the_search_tool_runs_the_hybrid_search_and_cites_the_document(
    org_a: Tenant, services: Services
) -> None:
    from tests.fixtures.kb_corpus import CORPUS

    kb = (await org_a.client.post("/api/knowledge-bases", json={"name": "Handbook"})).json()
    await org_a.client.post(
        "/api/documents/upload",
        files={"file": ("handbook.md", CORPUS.encode(), "text/markdown")},
        data={"knowledge_base_id": kb["id"]},
    )
    await services.knowledge.ingestor.drain()
    llm = script(
        services,
        ToolCall("search_knowledge_base", {"query": "returns refund days"}),
        "You have 30 days.",
    )
    agent = await make_agent(
        org_a,
        tools=["search_knowledge_base"],
        knowledge_base_id=kb["id"],
        knowledge={"auto_context": False},  # only the tool looks things up
    )
    reply = await chat(org_a, agent, message="How long do I have to send something back?")
    (run,) = reply["tool_calls"]
    assert run["ok"] and "30 days" in run["result"]["passages"][0]["text"]
    assert reply["passages"][0]["document_name"] == "handbook.md"
    assert "30 days" in llm.seen[-1][-1].content  # the result went back to the model
    stored = (await org_a.client.get(f"/api/conversations/{reply['conversation_id']}")).json()
    assert stored["messages"][-1]["citations"][0]["document_name"] == "handbook.md"


async def test_an_agent_without_a_knowledge_base_is_grounded_in_the_orgs_default_one(
    org_a: Tenant, services: Services
) -> None:
    from tests.fixtures.kb_corpus import CORPUS

    await org_a.client.post(
        "/api/documents/upload", files={"file": ("handbook.md", CORPUS.encode(), "text/markdown")}
    )
    await services.knowledge.ingestor.drain()
    llm = script(services, "You have 30 days.")
    reply = await chat(
        org_a, await make_agent(org_a), message="How long do I have to send something back?"
    )
    assert reply["passages"][0]["document_name"] == "handbook.md"
    assert "30 days" in llm.seen[-1][-1].content  # the passage was put before the question
