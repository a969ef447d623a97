"""The conversation engine with scripted models: routing records, the tool loop, flows, holding
phrases, escalation of an unsure SLM and fallback from a failing cloud tier."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

import pytest

from app.conversation.agent import AgentProfile
from app.conversation.engine import (
    MODEL_HOLDING_PHRASE,
    NO_ANSWER,
    NOT_AGAIN,
    STILL_WORKING_PHRASE,
    TOOL_HOLDING_PHRASE,
    ConversationEngine,
    ConversationState,
    EndCall,
    EngineEvent,
    HoldingPhrase,
    StepChanged,
    ToolRan,
    TurnResult,
)
from app.conversation.flows import validate_flow
from app.conversation.routing import TierPolicy
from app.llm.base import Message, TextDelta, Tier, ToolCall
from app.llm.router import TieredLLM
from app.rag.passage import Passage
from app.settings import Settings
from app.tools.registry import TOOL_NAMES, ToolBox
from tests import factories
from tests.fakes import FakeLLM

AGENT = AgentProfile(
    id="a1",
    name="Rosa's",
    system_prompt="You answer the phone for Rosa's Bakery.",
    greeting="Hi!",
    org_id="o1",
    tools=("end_call", "search_knowledge_base", "check_order_status"),
    knowledge_base_id="kb1",
)
PASSAGE = Passage(
    chunk_id=uuid.UUID(int=0xC1),
    document_id=uuid.UUID(int=0xD1),
    document_name="policy.md",
    position=0,
    heading="Returns",
    text="Returns are accepted for 45 days.",
)


def make_engine(
    slm: FakeLLM,
    *,
    cloud: FakeLLM | None = None,
    lookup: Any = None,
    settings: Settings | None = None,
    holding_after_s: float = 1.0,
    still_working_after_s: float = 2.5,
) -> ConversationEngine:
    settings = settings or factories.settings()
    tiers = {Tier.FLASH: cloud, Tier.PRO: cloud} if cloud is not None else {}
    router = TieredLLM(slm=slm, tiers=tiers, first_event_timeout_s=0.3)
    return ConversationEngine(
        llm=router,
        toolbox=ToolBox(settings, lookup=lookup),
        holding_after_s=holding_after_s,
        still_working_after_s=still_working_after_s,
    )


async def turn(
    engine: ConversationEngine, state: ConversationState, text: str
) -> tuple[list[EngineEvent], TurnResult]:
    events = [e async for e in engine.respond(state, text)]
    result = events[-1]
    assert isinstance(result, TurnResult)
    return events, result


def spoken(events: list[EngineEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_a_plain_turn_records_its_tier_and_why() -> None:
    slm = FakeLLM(replies=["We open at seven."])
    events, result = await turn(make_engine(slm), ConversationState.start(AGENT), "Hi there!")
    assert spoken(events) == "We open at seven."
    assert result.tier is Tier.SLM and result.model == "fake-llm"
    assert result.routing_record()["reasons"] == ["simple turn"]
    assert result.tokens_by_tier() == {"slm": {"prompt": 10, "completion": 4}}


async def test_without_gemini_a_flash_turn_is_served_locally_and_says_so() -> None:
    slm = FakeLLM(replies=["Sure."])
    long_question = "Could you tell me about your cakes and also whether you deliver? And when?"
    _, result = await turn(make_engine(slm), ConversationState.start(AGENT), long_question)
    assert result.decision is not None and result.decision.tier is Tier.FLASH
    assert result.served[0].tier is Tier.SLM
    assert result.served[0].reason == "no flash engine configured"


async def test_tool_call_result_goes_back_to_the_model_and_into_history() -> None:
    async def lookup(agent: AgentProfile, query: str) -> list[Passage]:
        assert query == "return policy"
        return [PASSAGE]

    slm = FakeLLM(
        replies=[
            ToolCall("search_knowledge_base", {"query": "return policy"}, "call_1"),
            "You can return items within 45 days.",
        ]
    )
    state = ConversationState.start(AGENT)
    events, result = await turn(
        make_engine(slm, lookup=lookup), state, "What is your return policy?"
    )
    ran = [e.outcome for e in events if isinstance(e, ToolRan)]
    assert [(r.name, r.ok) for r in ran] == [("search_knowledge_base", True)]
    assert spoken(events) == "You can return items within 45 days."
    assert result.sources == [PASSAGE]  # cited like automatic context
    call_message, tool_message = result.tool_messages
    assert call_message.tool_calls[0].name == "search_knowledge_base"
    assert tool_message.role == "tool" and "45 days" in tool_message.content
    # The second request carries the call and its result.
    assert slm.seen[-1][-2:] == [call_message, tool_message]


async def test_a_tool_that_acts_waits_until_the_caller_has_finished_the_turn() -> None:
    # A reply prepared on a guess (the caller paused): hanging up, booking or handing off for
    # words the caller then goes on from could not be undone.
    slm = FakeLLM(replies=[ToolCall("end_call", {"reason": "caller is done"}), "Goodbye!"])
    engine, finished = make_engine(slm), asyncio.Event()
    events = engine.respond(ConversationState.start(AGENT), "Thanks, bye!", finished=finished)
    seen: list[EngineEvent] = []

    async def drain() -> None:
        seen.extend([e async for e in events])

    draining = asyncio.create_task(drain())
    await asyncio.sleep(0.3)
    assert not any(isinstance(e, ToolRan | EndCall) for e in seen)  # waiting, not acting
    finished.set()
    await asyncio.wait_for(draining, 2)
    assert any(isinstance(e, EndCall) for e in seen)
    # A read-only lookup need not wait: it runs for the guess (see the order tests).


async def test_end_call_tool_ends_the_call_after_the_goodbye() -> None:
    slm = FakeLLM(replies=[ToolCall("end_call", {"reason": "caller is done"}), "Goodbye!"])
    events, _ = await turn(make_engine(slm), ConversationState.start(AGENT), "Thanks, bye!")
    assert any(isinstance(e, EndCall) for e in events)
    assert spoken(events) == "Goodbye!"
    assert slm.offered[0] is not None and [t.name for t in slm.offered[0]] == ["end_call"]
    # After a result the SLM only speaks: the same tools stay in its prompt (its cached prefix
    # is the round before's), and none may be called.
    assert slm.shown[1] == slm.shown[0] and slm.offered[1] is None and slm.choices[1] == "none"


async def test_the_slm_prompt_declares_the_same_tools_whatever_it_may_call() -> None:
    """A turn with grounds for a tool (end_call) and a turn with none declare the same tools, so
    the second reads only its new words from the KV cache; only the callable set changes."""
    slm = FakeLLM(replies=["Which order?", "We open at seven."])
    engine = make_engine(slm)
    state = ConversationState.start(AGENT)
    await turn(engine, state, "Thanks, that's all, bye!")
    await turn(engine, state, "And when do you open?")
    assert [[t.name for t in s or []] for s in slm.shown] == [
        [t.name for t in slm.shown[0] or []]
    ] * 2
    assert slm.shown[0] and slm.offered[1] is None and slm.choices[1] == "none"


async def test_the_slm_is_offered_only_the_tools_the_turn_gives_grounds_for() -> None:
    slm = FakeLLM(replies=["Could you give me the order number?", "One moment."])
    settings = factories.settings(order_api_url="http://x", velox_tool_url_orgs="o1")
    engine = make_engine(slm, settings=settings)
    state = ConversationState.start(AGENT)
    await turn(engine, state, "Where is my order?")
    assert slm.offered[0] is None  # no number said: nothing to look up
    _, result = await turn(engine, state, "My order is A1042, where is it?")
    # The id heard is the only one the call may carry, and the call is required: nothing is
    # left for the model to choose, so the call is made without sampling it.
    assert [(r.name, r.arguments) for r in result.tool_runs] == [
        ("check_order_status", {"order_id": "A1042"})
    ]
    # The model was not asked for the call (and the failing lookup's own words ended the turn).
    assert len(slm.seen) == 1


async def test_a_slow_tool_gets_a_holding_phrase() -> None:
    async def slow_lookup(agent: AgentProfile, query: str) -> list[Passage]:
        await asyncio.sleep(0.3)
        return [PASSAGE]

    flash = FakeLLM(replies=[ToolCall("search_knowledge_base", {"query": "returns"}), "45 days."])
    engine = make_engine(FakeLLM(), cloud=flash, lookup=slow_lookup, holding_after_s=0.1)
    agent = replace(AGENT, policy=TierPolicy(default_tier=Tier.FLASH))
    events, _ = await turn(engine, ConversationState.start(agent), "What's your return policy?")
    kinds = [type(e).__name__ for e in events if not isinstance(e, TextDelta)]
    assert kinds[:2] == ["HoldingPhrase", "ToolRan"]
    assert [e.text for e in events if isinstance(e, HoldingPhrase)] == [
        "Let me check that for you."
    ]


async def test_a_slow_model_gets_one_holding_phrase() -> None:
    slm = FakeLLM(replies=["Here you go."], first_token_s=0.3)
    engine = make_engine(slm, holding_after_s=0.1)
    events, _ = await turn(engine, ConversationState.start(AGENT), "Hello?")
    assert [e.text for e in events if isinstance(e, HoldingPhrase)] == ["One moment, please."]
    assert spoken(events) == "Here you go."


GREETING = "Hello, thanks for calling Rosa's Bakery. How can I help you today?"


def greeted() -> ConversationState:
    state = ConversationState.start(AGENT)
    state.history.append(Message("assistant", GREETING))
    return state


async def test_a_reply_repeating_the_greeting_is_asked_again_unheard() -> None:
    slm = FakeLLM(replies=[GREETING, "Sure, what is the order number?"])
    events, result = await turn(make_engine(slm), greeted(), "Can you check my order?")
    assert spoken(events) == "Sure, what is the order number?"
    assert result.text == "Sure, what is the order number?"
    assert NOT_AGAIN in slm.seen[-1][-1].content
    assert result.routing_record()["repeats_caught"] == ["hello thanks for calling rosa s bakery"]


async def test_a_model_that_repeats_itself_twice_gets_an_honest_short_answer() -> None:
    slm = FakeLLM(replies=[GREETING, "How can I help you today?"])
    events, result = await turn(make_engine(slm), greeted(), "Do you make wedding cakes?")
    assert spoken(events) == result.text == NO_ANSWER
    assert len(slm.seen) == 2


async def test_a_caller_asking_for_a_repeat_hears_it_again() -> None:
    slm = FakeLLM(replies=[GREETING])
    events, result = await turn(make_engine(slm), greeted(), "Sorry, could you repeat that?")
    assert spoken(events) == GREETING and not result.repeats


async def test_a_model_still_silent_after_the_holding_phrase_says_sorry_for_the_wait() -> None:
    slm = FakeLLM(replies=["Here you go."], first_token_s=0.5)
    engine = make_engine(slm, holding_after_s=0.1, still_working_after_s=0.2)
    events, result = await turn(engine, ConversationState.start(AGENT), "Hello?")
    assert [e.text for e in events if isinstance(e, HoldingPhrase)] == [
        MODEL_HOLDING_PHRASE,
        STILL_WORKING_PHRASE,
    ]
    assert spoken(events) == result.text == "Here you go."


async def test_a_tool_still_running_after_its_holding_phrase_says_sorry_once() -> None:
    async def slow_lookup(agent: AgentProfile, query: str) -> list[Passage]:
        await asyncio.sleep(0.5)
        return [PASSAGE]

    flash = FakeLLM(replies=[ToolCall("search_knowledge_base", {"query": "returns"}), "45 days."])
    engine = make_engine(
        FakeLLM(), cloud=flash, lookup=slow_lookup, holding_after_s=0.1, still_working_after_s=0.2
    )
    agent = replace(AGENT, policy=TierPolicy(default_tier=Tier.FLASH))
    events, _ = await turn(engine, ConversationState.start(agent), "What's your return policy?")
    said = [e.text if isinstance(e, HoldingPhrase) else type(e).__name__ for e in events]
    assert [s for s in said if s != "TextDelta"] == [
        TOOL_HOLDING_PHRASE,
        STILL_WORKING_PHRASE,
        "ToolRan",
        "TurnResult",
    ]


async def test_an_unsure_slm_escalates_to_flash() -> None:
    slm = FakeLLM(replies=["Maybe."], confidence=0.3)
    flash = FakeLLM(replies=["Our sourdough has a three-day ferment."], name="gemini")
    events, result = await turn(
        make_engine(slm, cloud=flash), ConversationState.start(AGENT), "Is the bread vegan?"
    )
    assert spoken(events) == "Our sourdough has a three-day ferment."  # nothing of the SLM's
    assert [(r.tier, r.reason) for r in result.served] == [
        (Tier.SLM, "routed"),
        (Tier.FLASH, "slm unsure (0.30 < 0.60)"),
    ]
    assert result.tokens_by_tier() == {"flash": {"prompt": 10, "completion": 6}}


async def test_a_sure_slm_keeps_the_turn() -> None:
    slm = FakeLLM(replies=["Yes, it is."], confidence=0.9)
    flash = FakeLLM(replies=["never"])
    events, result = await turn(
        make_engine(slm, cloud=flash), ConversationState.start(AGENT), "Is the bread vegan?"
    )
    assert spoken(events) == "Yes, it is." and flash.seen == []
    assert result.tier is Tier.SLM


async def test_an_agent_may_turn_escalation_off() -> None:
    agent = replace(AGENT, policy=TierPolicy(escalate_when_unsure=False))
    slm = FakeLLM(replies=["Maybe."], confidence=0.3)
    flash = FakeLLM(replies=["never"])
    events, _ = await turn(
        make_engine(slm, cloud=flash), ConversationState.start(agent), "Is the bread vegan?"
    )
    assert spoken(events) == "Maybe."


@pytest.mark.parametrize(
    ("cloud", "reason"),
    [
        (FakeLLM(fail=ConnectionError("down")), "flash failed: ConnectionError"),
        (FakeLLM(first_token_s=2.0), "flash failed: no answer in time"),
    ],
)
async def test_a_failing_or_silent_cloud_tier_falls_back_to_the_slm(
    cloud: FakeLLM, reason: str
) -> None:
    slm = FakeLLM(replies=["Local answer."])
    question = "Can you compare your two cake sizes and tell me which one feeds twelve people?"
    events, result = await turn(
        make_engine(slm, cloud=cloud), ConversationState.start(AGENT), question
    )
    assert spoken(events) == "Local answer."
    assert [r.reason for r in result.served][-1] == reason
    assert result.tier is Tier.SLM


async def test_agent_max_tier_caps_routing() -> None:
    agent = replace(AGENT, policy=TierPolicy(max_tier=Tier.FLASH))
    flash = FakeLLM(replies=["Sorry to hear that."], name="gemini")
    _, result = await turn(
        make_engine(FakeLLM(), cloud=flash),
        ConversationState.start(agent),
        "I want a refund, I was charged twice!",
    )
    assert result.decision is not None
    assert result.decision.tier is Tier.FLASH
    assert "capped at the agent's max tier flash" in result.decision.reasons


FLOW = {
    "start": "menu",
    "nodes": [
        {
            "id": "menu",
            "instructions": "Ask whether the caller wants orders or hours.",
            "transitions": [
                {"to": "orders", "when": "the caller asks about an order", "dtmf": "1"},
                {"to": "hours", "when": "the caller asks about opening hours", "dtmf": "2"},
            ],
        },
        {"id": "orders", "instructions": "Ask for the order number.", "end": True},
        {"id": "hours", "instructions": "We open 7 to 6.", "end": True},
    ],
}


async def test_flow_moves_on_when_the_model_calls_go_to_step() -> None:
    flow = validate_flow(FLOW, known_tools=TOOL_NAMES)
    agent = replace(AGENT, flow=flow, policy=TierPolicy(default_tier=Tier.FLASH))
    flash = FakeLLM(
        replies=[ToolCall("go_to_step", {"step": "hours"}), "We open at seven, until six."]
    )
    state = ConversationState.start(agent)
    assert "Ask whether the caller wants orders or hours." in state.system_message().content
    events, result = await turn(make_engine(FakeLLM(), cloud=flash), state, "When do you open?")
    assert [e for e in events if isinstance(e, StepChanged)] == [
        StepChanged("menu", "hours", "model")
    ]
    assert result.node == "hours" and result.routing_record()["node"] == "hours"
    # The reply after the move is written under the new step's instructions.
    assert "We open 7 to 6." in flash.seen[1][0].content


async def test_on_the_slm_the_callers_words_pick_the_branch() -> None:
    agent = replace(AGENT, flow=validate_flow(FLOW, known_tools=TOOL_NAMES))
    slm = FakeLLM(replies=["Hello! Orders or hours?", "We open at seven."])
    state = ConversationState.start(agent)
    events, _ = await turn(make_engine(slm), state, "Hello there.")  # no grounds: stays
    assert not [e for e in events if isinstance(e, StepChanged)]
    events, result = await turn(make_engine(slm), state, "What are your opening hours?")
    assert [e for e in events if isinstance(e, StepChanged)] == [
        StepChanged("menu", "hours", "words")
    ]
    assert result.node == "hours" and "We open 7 to 6." in slm.seen[1][0].content


async def test_a_turn_cut_short_still_records_the_step_that_answered_it() -> None:
    """A caller who talks over a slow reply cuts it off; the record still says which step the
    turn was at, as it says the routing."""
    agent = replace(AGENT, flow=validate_flow(FLOW, known_tools=TOOL_NAMES))
    state = ConversationState.start(agent)
    result = TurnResult()
    events = make_engine(FakeLLM(first_token_s=30.0)).respond(
        state, "What are your opening hours?", result=result
    )
    async for event in events:
        if isinstance(event, StepChanged):
            break
    await events.aclose()  # type: ignore[attr-defined]
    assert result.node == "hours" and result.routing_record()["node"] == "hours"


async def test_an_intake_step_moves_on_whatever_the_caller_answers() -> None:
    intake = {
        "start": "name",
        "nodes": [
            {
                "id": "name",
                "instructions": "Ask for the caller's name.",
                "transitions": [{"to": "reason", "on_reply": True}],
            },
            {"id": "reason", "instructions": "Ask why they are calling.", "end": True},
        ],
    }
    agent = replace(AGENT, flow=validate_flow(intake, known_tools=TOOL_NAMES))
    slm = FakeLLM(replies=["Thanks, Bob. Why are you calling?"])
    state = ConversationState.start(agent)
    events, result = await turn(make_engine(slm), state, "It's Bob.")
    assert [e for e in events if isinstance(e, StepChanged)] == [
        StepChanged("name", "reason", "reply")
    ]
    assert "Ask why they are calling." in slm.seen[0][0].content
    # A key press is not an answer to the step.
    state = ConversationState.start(agent)
    events, _ = await turn(make_engine(FakeLLM()), state, state.press("5"))
    assert state.flow is not None and state.flow.current == "name"


async def test_a_bad_step_is_reported_to_the_model_not_raised() -> None:
    agent = replace(AGENT, flow=validate_flow(FLOW, known_tools=TOOL_NAMES))
    slm = FakeLLM(replies=[ToolCall("go_to_step", {"step": "nowhere"}), "Sorry, orders or hours?"])
    state = ConversationState.start(agent)
    events, result = await turn(make_engine(slm), state, "Take me somewhere")
    (ran,) = [e.outcome for e in events if isinstance(e, ToolRan)]
    assert not ran.ok and state.flow is not None and state.flow.current == "menu"
    assert result.tool_messages[-1].role == "tool"


async def test_tool_rounds_are_bounded() -> None:
    calls = [ToolCall("end_call", {}) for _ in range(10)]
    slm = FakeLLM(replies=[*calls])
    flash = FakeLLM(replies=[*calls, *calls])
    engine = make_engine(slm, cloud=flash)
    agent = replace(AGENT, policy=TierPolicy(default_tier=Tier.FLASH))
    _, result = await turn(engine, ConversationState.start(agent), "Bye now, thanks!")
    assert len(result.tool_runs) == 3
    # The last round must speak: the tools stay declared, but calling them is off.
    assert flash.offered[-1] is not None and flash.choices[-1] == "none"


async def test_history_is_left_to_the_caller_of_the_engine() -> None:
    state = ConversationState.start(AGENT)
    state.history.append(Message("user", "Hi"))
    await turn(make_engine(FakeLLM()), state, "Hello?")
    assert state.history == [Message("user", "Hi")]


async def test_the_slm_keeps_its_own_tool_limits_when_a_cloud_tier_falls_back_to_it() -> None:
    slm = FakeLLM(replies=["Local answer."])
    flash = FakeLLM(fail=ConnectionError("down"))
    question = "Tell me about your cakes? And do you deliver them on weekends too?"
    _, result = await turn(make_engine(slm, cloud=flash), ConversationState.start(AGENT), question)
    assert [t.name for t in flash.offered[0] or []] == ["end_call"]
    assert slm.offered == [None] and slm.choices == ["none"]  # no grounds for a tool here
    assert [[t.name for t in shown or []] for shown in slm.shown] == [["end_call"]]
    assert result.tier is Tier.SLM
