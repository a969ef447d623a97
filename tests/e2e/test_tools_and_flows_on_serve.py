"""Phone calls (`velox call`'s simulator) to agents with tools and flows on the real Serve app:
the local SLM calls the order tool against the demo business API, and a keypad menu moves a
flow; both are saved in the conversation record."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.db.organizations import create_org_with_key
from harness.simulator.script import run_scripted_call
from tests import factories
from tests.e2e.conftest import CALLER_PATIENCE_S, TWILIO_TOKEN
from tests.e2e.test_calls_on_serve import saved_call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DTMF_MENU = {
    "start": "menu",
    "nodes": [
        {
            "id": "menu",
            "instructions": "Say: press 1 for orders, 2 for opening hours.",
            "transitions": [{"to": "orders", "dtmf": "1"}, {"to": "hours", "dtmf": "2"}],
        },
        {
            "id": "orders",
            "instructions": "Ask for the order number.",
            "tools": ["check_order_status"],
        },
        {"id": "hours", "instructions": "Say that we open at 7 am and close at 6 pm."},
    ],
}


INTAKE_THEN_BRANCH = {
    "start": "name",
    "nodes": [
        {
            "id": "name",
            "instructions": "Ask for the caller's name.",
            "transitions": [{"to": "topic", "on_reply": True}],
        },
        {
            "id": "topic",
            "instructions": "Ask whether the call is about an order or about opening hours.",
            "transitions": [
                {"to": "orders", "when": "the caller asks about an order"},
                {"to": "hours", "when": "the caller asks about opening hours"},
            ],
        },
        {"id": "orders", "instructions": "Ask for the order number."},
        {"id": "hours", "instructions": "Say that we open at 7 am and close at 6 pm."},
    ],
}


async def make_agent(serve_url: str, postgres_url: str, number: str, **fields: Any) -> None:
    settings = factories.settings(database_url=postgres_url)
    _, key = await create_org_with_key(settings, f"Bakery {number}", "e2e")
    async with httpx.AsyncClient(
        base_url=serve_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as api:
        agent = await api.post(
            "/api/agents",
            json={
                "name": "Front desk",
                "system_prompt": "You answer the phone for Rosa's Bakery. "
                "Reply in one short spoken sentence.",
                "greeting": "Rosa's Bakery, how can I help?",
                **fields,
            },
        )
        assert agent.status_code == 201, agent.text
        assigned = await api.post(
            "/api/phone-numbers", json={"number": number, "agent_id": agent.json()["id"]}
        )
        assert assigned.status_code == 201, assigned.text


async def call_new_agent(
    serve_url: str,
    speech_engines: Any,
    postgres_url: str,
    tmp_path: Any,
    *,
    number: str,
    lines: list[str],
    dtmf: str | None = None,
    **agent: Any,
) -> tuple[Any, Any, list[Any]]:
    """Create an agent with `agent` fields on `number`, call it saying `lines`; return the
    report, and the conversation and messages the server saved."""
    await make_agent(serve_url, postgres_url, number, **agent)
    tts, stt = speech_engines
    report = await run_scripted_call(
        serve_url,
        lines=lines,
        dtmf=dtmf,
        to_number=number,
        auth_token=TWILIO_TOKEN,
        patience_s=CALLER_PATIENCE_S,
        save_dir=tmp_path,
        tts=tts,
        stt=stt,
    )
    assert not report.failed, report.lines()
    conversation, messages = await saved_call(postgres_url, report.result.call_sid)
    return report, conversation, messages


async def test_the_slm_looks_an_order_up_during_a_call(
    serve_url, speech_engines, postgres_url, tmp_path, demo_backend_url
):
    # A tenant's own order system (the deployment's ORDER_API_URL serves the demo org only);
    # on 127.0.0.1 here, which the e2e server allows with VELOX_ALLOW_PRIVATE_TOOL_URLS.
    report, _, messages = await call_new_agent(
        serve_url,
        speech_engines,
        postgres_url,
        tmp_path,
        number="+14155550801",
        lines=["Hi, where is my order A1042?"],
        tools=["check_order_status"],
        tool_settings={"urls": {"check_order_status": demo_backend_url}},
    )
    agent_message = messages[-1]
    seen = [(m.role, m.text, m.tool_calls, m.routing) for m in messages]
    assert len(agent_message.tool_calls) == 1, seen
    (run,) = agent_message.tool_calls
    assert run["name"] == "check_order_status" and run["ok"] is True, run
    assert run["arguments"]["order_id"] == "A1042"
    assert agent_message.routing["served"][0]["tier"] == "slm"
    assert report.agent_lines[0].strip(), "the agent said nothing after the lookup"
    assert "{" not in agent_message.text, "the agent read the order's JSON out"


async def test_a_keypad_menu_moves_the_flow(serve_url, speech_engines, postgres_url, tmp_path):
    _, conversation, messages = await call_new_agent(
        serve_url,
        speech_engines,
        postgres_url,
        tmp_path,
        number="+14155550802",
        lines=["And on Saturday?"],
        dtmf="2",
        flow=DTMF_MENU,
    )
    assert conversation.current_node == "hours"
    callers = [m.text for m in messages if m.role == "caller"]
    assert callers[0] == "(The caller pressed 2 on the keypad.)"
    answered = [m.routing.get("node") for m in messages if m.role == "agent" and m.routing]
    assert answered == ["hours", "hours"]


async def test_an_intake_step_then_a_branch_on_a_call(
    serve_url, speech_engines, postgres_url, tmp_path
):
    _, conversation, messages = await call_new_agent(
        serve_url,
        speech_engines,
        postgres_url,
        tmp_path,
        number="+14155550803",
        lines=["Hi, this is Ann Lee.", "I have a question about my order."],
        flow=INTAKE_THEN_BRANCH,
    )
    assert conversation.current_node == "orders"
    answered = [m.routing.get("node") for m in messages if m.role == "agent" and m.routing]
    assert answered == ["topic", "orders"]
