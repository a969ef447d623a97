"""Routing with Gemini switched on: the engine, the router and the real google-genai SDK against
the local Gemini server. Flash runs a tool and speaks its result; a high-stakes turn goes to Pro;
a failing or silent Gemini falls back to the local model within the deadline."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationEngine, ConversationState, ToolRan, TurnResult
from app.engines import build_router
from app.llm.base import TextDelta, Tier
from app.settings import Settings
from app.tools.registry import ToolBox
from tests.fakes import FakeLLM
from tests.fakes.gemini_server import API_KEY, FakeGemini, FakeTurn

pytestmark = pytest.mark.integration

AGENT = AgentProfile(
    id="a1",
    name="Desk",
    system_prompt="You answer the phone for Rosa's Bakery.",
    greeting="Hi!",
    org_id="o1",
    tools=("end_call",),
)


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    with FakeGemini() as fake:
        yield fake


def engine_for(
    gemini: FakeGemini,
    slm: FakeLLM,
    first_event_timeout_s: float = 3.0,
    gemini_timeout_s: float = 5.0,
) -> ConversationEngine:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        gemini_api_key=API_KEY,
        gemini_base_url=gemini.url,
        gemini_timeout_s=gemini_timeout_s,
        llm_tier_first_event_timeout_s=first_event_timeout_s,
    )
    return ConversationEngine(
        llm=build_router(settings, slm),
        toolbox=ToolBox(settings),
    )


async def run(engine: ConversationEngine, text: str) -> tuple[str, TurnResult, list[ToolRan]]:
    events = [e async for e in engine.respond(ConversationState.start(AGENT), text)]
    result = events[-1]
    assert isinstance(result, TurnResult)
    spoken = "".join(e.text for e in events if isinstance(e, TextDelta))
    return spoken, result, [e for e in events if isinstance(e, ToolRan)]


async def test_flash_calls_a_tool_and_speaks_after_its_result(gemini: FakeGemini) -> None:
    gemini.script = [
        FakeTurn(function_calls=[("end_call", {"reason": "caller is done"})]),
        FakeTurn(text="Thanks for calling, goodbye!"),
    ]
    slm = FakeLLM()
    spoken, result, ran = await run(
        engine_for(gemini, slm), "Okay that is everything I needed today, thanks a lot, bye now!"
    )
    assert [r.outcome.name for r in ran] == ["end_call"]
    assert spoken == "Thanks for calling, goodbye!"
    assert result.tier is Tier.FLASH and result.model == "gemini-2.5-flash"
    assert result.tokens_by_tier()["flash"]["prompt"] > 0
    assert slm.seen == []
    paths = [path for path, _ in gemini.requests]
    assert all("gemini-2.5-flash:streamGenerateContent" in p for p in paths)
    follow_up = gemini.requests[-1][1]["contents"]
    assert "functionResponse" in follow_up[-1]["parts"][0]


async def test_a_high_stakes_turn_goes_to_pro(gemini: FakeGemini) -> None:
    gemini.script = [FakeTurn(text="I'm sorry, let me sort out that refund.")]
    spoken, result, _ = await run(
        engine_for(gemini, FakeLLM()), "I was charged twice, I want a refund!"
    )
    assert result.tier is Tier.PRO and "gemini-2.5-pro" in gemini.requests[-1][0]
    assert result.decision is not None and result.decision.reasons[0].startswith("high stakes")
    assert spoken.startswith("I'm sorry")


LONG_TURN = "Tell me about your cakes? And do you deliver them on weekends too?"


async def test_a_gemini_error_falls_back_to_the_local_model(gemini: FakeGemini) -> None:
    gemini.fail_next = [503, 503]
    slm = FakeLLM(replies=["Here's what I know."])
    spoken, result, _ = await run(engine_for(gemini, slm), LONG_TURN)
    assert spoken == "Here's what I know." and result.tier is Tier.SLM
    assert result.served[-1].reason == "flash failed: ServerError"


async def test_a_silent_gemini_falls_back_within_the_first_event_deadline(
    gemini: FakeGemini,
) -> None:
    # Gemini answers after 2 s: past the 1 s first-event deadline, before the 3 s default, and
    # long before the engine's own 30 s timeout, so the local reply proves the 1 s deadline cut
    # Flash off (with any other, Flash would have spoken "too late").
    gemini.script = [FakeTurn(text="too late", delay_s=2.0)]
    slm = FakeLLM(replies=["Here's what I know."])
    engine = engine_for(gemini, slm, first_event_timeout_s=1.0, gemini_timeout_s=30.0)
    spoken, result, _ = await run(engine, LONG_TURN)
    assert spoken == "Here's what I know." and result.tier is Tier.SLM
    assert [routed.tier for routed in result.served] == [Tier.FLASH, Tier.SLM]
    assert result.served[-1].reason == "flash failed: no answer in time"
    assert len(gemini.requests) == 1
