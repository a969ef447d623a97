"""A lookup's result answers the turn: the engine against the demo business API, and against a
business API whose answers leave the putting into words to the model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationEngine, ConversationState, TurnResult
from app.llm.base import TextDelta, ToolCall
from app.llm.router import TieredLLM
from app.rag.passage import Passage
from app.settings import Settings
from app.tools.registry import ToolBox
from harness.serving import serving
from tests import factories
from tests.fakes import FakeLLM

pytestmark = pytest.mark.integration

AGENT = AgentProfile(
    id="a1",
    name="Rosa's",
    system_prompt="You answer the phone for Rosa's Bakery.",
    greeting="Hi!",
    org_id="o1",
    tools=("check_order_status", "check_item_stock"),
)
DELIVERY = Passage(
    chunk_id=uuid.UUID(int=0xC2),
    document_id=uuid.UUID(int=0xD2),
    document_name="handbook.md",
    position=3,
    heading="Delivery",
    text="We deliver within five miles of 12 Main Street, Tuesday to Saturday, 9 am to 4 pm.",
)


@pytest.fixture(scope="module")
def terse() -> Iterator[str]:
    """An order system that answers with a status nobody wrote words for."""

    async def order(request: Request) -> JSONResponse:
        return JSONResponse({"order_id": request.path_params["order_id"], "status": ""})

    with serving(Starlette(routes=[Route("/orders/{order_id}", order)])) as url:
        yield url


def settings_for(url: str) -> Settings:
    return factories.settings(
        order_api_url=url,
        inventory_api_url=url,
        velox_tool_url_orgs="o1",
        velox_allow_private_tool_urls=True,
    )


async def answer(
    url: str, slm: FakeLLM, said: str, passages: list[Passage] | None = None
) -> tuple[str, TurnResult]:
    engine = ConversationEngine(
        llm=TieredLLM(slm=slm, tiers={}), toolbox=ToolBox(settings_for(url))
    )
    events = [e async for e in engine.respond(ConversationState.start(AGENT), said, passages)]
    result = events[-1]
    assert isinstance(result, TurnResult)
    return "".join(e.text for e in events if isinstance(e, TextDelta)), result


async def test_a_lookup_says_what_it_found_in_its_own_words(demo_backend: str) -> None:
    slm = FakeLLM(replies=["This means your order is on its way to 12 Main Street."])
    spoken, result = await answer(demo_backend, slm, "Where is my order A1042?", [DELIVERY])
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    assert (
        spoken
        == result.text
        == f"Order A1042 has shipped with UPS and should arrive on {tomorrow}."
    )
    # The call was forced (the id was the only one said) and nothing was left to say after it:
    # the model was not asked at all.
    assert slm.seen == []
    assert result.sources == []  # the passages beside the question were not read: not cited


async def test_stock_answers_say_what_is_left_or_when_it_comes_back(demo_backend: str) -> None:
    for item, expected in (
        ("rye", "Yes, we have Rye bread in stock, 3 left."),
        ("bagel", "Sorry, Sesame bagel is sold out; it's back on "),
        ("kayak", "Sorry, I couldn't find kayak in our range."),
    ):
        slm = FakeLLM(replies=[ToolCall("check_item_stock", {"item": item})])
        spoken, _ = await answer(demo_backend, slm, f"Have you got any {item} today?")
        assert spoken.startswith(expected), spoken
        assert len(slm.seen) == 1  # the call; no round to read the result back


async def test_passages_are_not_read_beside_a_result_the_model_puts_in_words(terse: str) -> None:
    slm = FakeLLM(replies=["It's in the system, but I can't see its status yet."])
    spoken, result = await answer(terse, slm, "Where is my order A1042?", [DELIVERY])
    assert spoken == "It's in the system, but I can't see its status yet."
    (prompt,) = slm.seen  # the one round that speaks, after the forced call
    assert "Where is my order A1042?" in prompt[-3].content
    assert "12 Main Street" not in " ".join(m.content for m in prompt)
    assert result.sources == []
