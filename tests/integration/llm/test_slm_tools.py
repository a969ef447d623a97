"""Tool calls from the real local SLM, through the conversation engine, executed against the demo
business API: the labelled requests of tests/fixtures/turns.py (the set routing is tuned on) and,
reported apart, those of tests/fixtures/held_out_turns.py (never tuned on), each with its
success rate printed.

A request succeeds when the model calls the expected tool with the expected arguments and the
call runs (or, for requests that need no tool, when it calls none); a turn asking two things
calls both tools, a handoff reaches the handoff system, and a reply that must ask for something
does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import date

import httpx
import pytest

from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationEngine, ConversationState, ToolRan, TurnResult
from app.engines import build_slm
from app.llm.base import LanguageModel, Message
from app.llm.router import TieredLLM
from app.settings import Settings, get_settings
from app.tools.registry import ToolBox
from harness.demo_backend import create_demo_backend
from harness.serving import serving
from tests.fixtures.held_out_turns import HELD_OUT_REQUESTS
from tests.fixtures.held_out_turns_2 import HELD_OUT_REQUESTS_2
from tests.fixtures.turns import TODAY, TOOL_REQUESTS, ToolRequest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AGENT = AgentProfile(
    id="bakery",
    name="Rosa's Bakery",
    system_prompt=get_settings().telephony.velox_system_prompt,
    greeting="Hi!",
    org_id="org",
    tools=(
        "check_order_status",
        "check_item_stock",
        "book_appointment",
        "get_customer_profile",
        "transfer_to_agent",
        "end_call",
    ),
    transfer_number="+15550100",
)


@pytest.fixture(scope="module")
def slm() -> LanguageModel:
    return build_slm(get_settings())


# A fresh business per set: one set's bookings do not take the other's slots.
@pytest.fixture
def backend() -> Iterator[str]:
    with serving(create_demo_backend(today=date.fromisoformat(TODAY))) as url:
        yield url


@pytest.fixture
async def engine(backend: str, slm: LanguageModel) -> AsyncIterator[ConversationEngine]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        order_api_url=backend,
        inventory_api_url=backend,
        calendar_api_url=backend,
        crm_api_url=backend,
        handoff_api_url=backend,
        velox_tool_url_orgs="org",  # AGENT's org: the deployment's URLs serve it
    )
    async with ToolBox(settings) as toolbox:
        yield ConversationEngine(llm=TieredLLM(slm=slm), toolbox=toolbox)


def verdict(request: ToolRequest, result: TurnResult, handed_off: bool) -> str | None:
    """None if the turn did what the request needs, else what went wrong."""
    runs = result.tool_runs
    if request.tool is None:
        return f"called {runs[0].name}{runs[0].arguments}" if runs else None
    if not runs:
        return f"no call; said {result.text!r}"
    # A turn asking two things may have them done in either order.
    run = next((r for r in runs if r.name == request.tool), runs[0])
    if run.name != request.tool:
        return f"called {run.name}{run.arguments}"
    for argument, piece in request.args.items():
        if piece.lower() not in str(run.arguments.get(argument, "")).lower():
            return f"{argument}={run.arguments.get(argument)!r}, expected {piece!r}"
    if not run.ok:
        return f"the call failed: {run.result}"
    called = [r.name for r in runs]
    if missing := [t for t in request.also if t not in called]:
        return f"called {called}, not {missing}"
    if request.tool == "transfer_to_agent" and not handed_off:
        return "the handoff system was not told"
    if any(mark in result.text for mark in "{}[]<>"):
        return f"read the result out as data: {result.text!r}"
    if request.says.lower() not in result.text.lower():
        return f"said {result.text!r}, not asking for {request.says!r}"
    return None


async def accuracy(
    engine: ConversationEngine, backend: str, requests: Sequence[ToolRequest]
) -> tuple[float, list[tuple[str, str]]]:
    """The share of `requests` the engine gets right, and what went wrong with the others."""
    failures: list[tuple[str, str]] = []
    async with httpx.AsyncClient(base_url=backend) as business:
        for request in requests:
            handoffs = len((await business.get("/handoffs")).json())
            state = ConversationState.start(
                AGENT,
                caller_number="+15550199",
                channel="playground",
                today=date.fromisoformat(TODAY),
            )
            for earlier in request.before:
                state.history += [
                    Message("user", earlier),
                    Message("assistant", "Sure. Could you tell me a bit more?"),
                ]
            events = [e async for e in engine.respond(state, request.said)]
            result = events[-1]
            assert isinstance(result, TurnResult)
            assert all(isinstance(e.outcome.ok, bool) for e in events if isinstance(e, ToolRan))
            handed_off = len((await business.get("/handoffs")).json()) > handoffs
            problem = verdict(request, result, handed_off)
            if problem is not None:
                failures.append((request.said, problem))
    return 1 - len(failures) / len(requests), failures


def report(name: str, requests: Sequence[ToolRequest], rate: float, failures: object) -> None:
    needing_tools = sum(1 for r in requests if r.tool is not None)
    print(
        f"\nSLM tool calls, {name}: {rate:.0%} of {len(requests)} requests right "
        f"({needing_tools} needing a tool); failures: {failures}"
    )


async def test_slm_tool_calls_parse_and_execute(engine: ConversationEngine, backend: str) -> None:
    rate, failures = await accuracy(engine, backend, TOOL_REQUESTS)
    report("tuning set (tests/fixtures/turns.py)", TOOL_REQUESTS, rate, failures)
    assert sum(1 for r in TOOL_REQUESTS if r.tool is not None) >= 30
    assert rate >= 0.95, failures


async def test_slm_tool_calls_on_held_out_turns(engine: ConversationEngine, backend: str) -> None:
    """Phrasing nothing was tuned on (tests/fixtures/held_out_turns.py), reported apart."""
    rate, failures = await accuracy(engine, backend, HELD_OUT_REQUESTS)
    report("held-out set (tests/fixtures/held_out_turns.py)", HELD_OUT_REQUESTS, rate, failures)
    # Issue 16's target is 95%. Measured 90% (36 of 40) on 2026-12-05, and the set may not be
    # tuned on to close the gap, so this guards the measured level, less a margin for sampling
    # at the shipped temperature: a change that loses ground on phrasing it never saw fails
    # here, while the target stays open on the issue.
    assert rate >= 0.8, failures


async def test_slm_tool_calls_on_the_second_held_out_set(
    engine: ConversationEngine, backend: str
) -> None:
    """A second set nothing was tuned on (tests/fixtures/held_out_turns_2.py), reported apart."""
    rate, failures = await accuracy(engine, backend, HELD_OUT_REQUESTS_2)
    report(
        "second held-out set (tests/fixtures/held_out_turns_2.py)",
        HELD_OUT_REQUESTS_2,
        rate,
        failures,
    )
    # Measured 93% (28 of 30) on 2026-12-06, its first run: a call written as text in a
    # ```json block, and "any in?" not heard as a stock question. Guarded like the first set.
    assert rate >= 0.8, failures


async def test_saying_a_result_reads_only_the_call_and_the_result(
    engine: ConversationEngine,
) -> None:
    """The round that says a tool's result starts with the prompt of the round that called it,
    so the model reads only what is new (the call and its result) from its KV cache, not the
    system prompt, the tools and the conversation again. (A customer's profile is put in words
    by the model; an order's status the tool says itself, with no second round.)"""
    state = ConversationState.start(
        AGENT, caller_number="+15550199", channel="playground", today=date.fromisoformat(TODAY)
    )
    events = [e async for e in engine.respond(state, "Hi, can you look up my account?")]
    result = events[-1]
    assert isinstance(result, TurnResult) and [r.name for r in result.tool_runs] == [
        "get_customer_profile"
    ]
    (_, calling), (_, saying) = result.usage
    assert saying.cached_tokens >= calling.prompt_tokens, (calling, saying)
