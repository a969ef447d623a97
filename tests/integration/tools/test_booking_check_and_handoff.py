"""A booking request with a day and a time but no name checks the calendar (the demo business
API's GET /availability) and books nothing; a handoff system alone lets an agent hand off."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationEngine, ConversationState, ToolRan, TurnResult
from app.llm.base import ToolCall
from app.llm.router import TieredLLM
from app.tools.appointment import ASK_NAME, OFFER_ANOTHER
from app.tools.base import ToolContext, ToolOutcome
from app.tools.registry import ToolBox
from harness.demo_backend import create_demo_backend
from harness.serving import serving
from tests import factories
from tests.fakes import FakeLLM

pytestmark = pytest.mark.integration

TODAY = date(2030, 5, 13)
TOMORROW = (TODAY + timedelta(days=1)).isoformat()
CTX = ToolContext(
    org_id="org-1", agent_id="a", conversation_id="c", call_sid=None, caller_number="+15550199"
)
AGENT = AgentProfile(
    id="a",
    name="Desk",
    system_prompt="Be brief.",
    greeting="Hi!",
    org_id="org-1",
    tools=("book_appointment", "transfer_to_agent"),
)


def settings(url: str) -> Any:
    return factories.settings(
        calendar_api_url=url,
        handoff_api_url=url,
        velox_tool_url_orgs="org-1",
        velox_allow_private_tool_urls=True,
    )


async def test_a_day_and_time_without_a_name_check_the_slot_and_book_nothing() -> None:
    app = create_demo_backend(today=TODAY)
    with serving(app) as url:
        async with ToolBox(settings(url)) as tools:
            state = ConversationState.start(AGENT)
            booked_before = len(app.state.data.appointments)

            async def check(at: str) -> ToolOutcome:
                call = ToolCall("book_appointment", {"date": TOMORROW, "time": at})
                outcome = await tools.run(call, CTX, state, TurnResult())
                assert outcome.ok, outcome
                return outcome

            free = await check("11:00")
            taken = await check("10:00")  # the demo calendar's first slot taken tomorrow
            assert len(app.state.data.appointments) == booked_before
    assert free.result == {"date": TOMORROW, "time": "11:00", "free": True, "next": ASK_NAME}
    assert free.asks == "That time is free. What name should I book it under?"
    assert taken.result["free"] is False and taken.result["next"] == OFFER_ANOTHER
    assert taken.result["alternatives"] == ["09:00", "09:30", "11:00"]
    assert taken.asks == (
        "That time is taken, but I have 09:00, 09:30 or 11:00. Which suits you, and what name?"
    )


async def test_a_calendar_without_the_check_leaves_it_to_the_booking() -> None:
    with serving(Starlette()) as url:  # answers 404 to everything
        async with ToolBox(settings(url)) as tools:
            call = ToolCall("book_appointment", {"date": TOMORROW, "time": "11:00"})
            outcome = await tools.run(call, CTX, ConversationState.start(AGENT), TurnResult())
    assert outcome.ok
    assert outcome.result == {"date": TOMORROW, "time": "11:00", "next": ASK_NAME}
    assert outcome.asks == "I can book that. What name should I book it under?"


async def test_the_engine_says_what_the_check_still_needs_and_ends_the_turn() -> None:
    with serving(create_demo_backend(today=TODAY)) as url:
        slm = FakeLLM(replies=[ToolCall("book_appointment", {"date": TOMORROW, "time": "11:00"})])
        async with ToolBox(settings(url)) as toolbox:
            engine = ConversationEngine(llm=TieredLLM(slm=slm), toolbox=toolbox)
            state = ConversationState.start(AGENT, today=TODAY)
            events = [e async for e in engine.respond(state, "Tomorrow at 11 am, please.")]
    result = events[-1]
    assert isinstance(result, TurnResult)
    assert result.text == "That time is free. What name should I book it under?"


async def test_a_handoff_system_alone_hands_off_in_the_playground() -> None:
    app = create_demo_backend(today=TODAY)
    with serving(app) as url:
        toolbox = ToolBox(settings(url))  # no transfer number anywhere
        state = ConversationState.start(AGENT, channel="playground")
        assert "transfer_to_agent" in [s.name for s in toolbox.specs(state)]
        slm = FakeLLM(replies=[ToolCall("transfer_to_agent", {"reason": "wants a manager"}), "Ok."])
        engine = ConversationEngine(llm=TieredLLM(slm=slm), toolbox=toolbox)
        try:
            events = [e async for e in engine.respond(state, "Get me your manager.")]
        finally:
            await toolbox.aclose()
        handoffs = httpx.get(f"{url}/handoffs").json()
    (ran,) = [e.outcome for e in events if isinstance(e, ToolRan)]
    assert ran.ok and ran.result["simulated"] is True
    assert [h["reason"] for h in handoffs] == ["wants a manager"]
    # Without a handoff system or a number, there is no one to hand off to.
    bare = ToolBox(factories.settings(handoff_api_url=None))
    assert "transfer_to_agent" not in [s.name for s in bare.specs(ConversationState.start(AGENT))]
    await bare.aclose()
