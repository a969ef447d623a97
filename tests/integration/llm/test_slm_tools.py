"""Tool calls from the real local SLM, through the conversation engine, executed against the demo
business API: the labelled requests in tests/fixtures/turns.py, with the success rate printed.

A request succeeds when the model calls the expected tool with the expected arguments and the
call runs (or, for requests that need no tool, when it calls none).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationEngine, ConversationState, ToolRan, TurnResult
from app.engines import build_slm
from app.llm.base import Message
from app.llm.router import TieredLLM
from app.settings import Settings, get_settings
from app.tools.registry import ToolBox
from harness.demo_backend import create_demo_backend
from tests.fakes.serving import serving
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
def backend() -> Iterator[str]:
    with serving(create_demo_backend(today=date.fromisoformat(TODAY))) as url:
        yield url


@pytest.fixture(scope="module")
def engine(backend: str) -> ConversationEngine:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        order_api_url=backend,
        inventory_api_url=backend,
        calendar_api_url=backend,
        crm_api_url=backend,
        handoff_api_url=backend,
        velox_tool_url_orgs="org",  # AGENT's org: the deployment's URLs serve it
    )
    slm = build_slm(get_settings())
    return ConversationEngine(
        llm=TieredLLM(slm=slm),
        toolbox=ToolBox(settings),
    )


def verdict(request: ToolRequest, result: TurnResult) -> str | None:
    """None if the turn did what the request needs, else what went wrong."""
    runs = result.tool_runs
    if request.tool is None:
        return f"called {runs[0].name}{runs[0].arguments}" if runs else None
    if not runs:
        return f"no call; said {result.text!r}"
    run = runs[0]
    if run.name != request.tool:
        return f"called {run.name}{run.arguments}"
    for argument, piece in request.args.items():
        if piece.lower() not in str(run.arguments.get(argument, "")).lower():
            return f"{argument}={run.arguments.get(argument)!r}, expected {piece!r}"
    if not run.ok:
        return f"the call failed: {run.result}"
    if any(mark in result.text for mark in "{}[]<>"):
        return f"read the result out as data: {result.text!r}"
    return None


async def test_slm_tool_calls_parse_and_execute(engine: ConversationEngine) -> None:
    failures: list[tuple[str, str]] = []
    for request in TOOL_REQUESTS:
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
        problem = verdict(request, result)
        if problem is not None:
            failures.append((request.said, problem))
    needing_tools = sum(1 for r in TOOL_REQUESTS if r.tool is not None)
    rate = 1 - len(failures) / len(TOOL_REQUESTS)
    print(
        f"\nSLM tool calls: {rate:.0%} of {len(TOOL_REQUESTS)} requests right "
        f"({needing_tools} needing a tool); failures: {failures}"
    )
    assert needing_tools >= 30
    assert rate >= 0.95, failures
