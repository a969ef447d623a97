"""A lookup's result answers the turn on its own: the engine against the demo business API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationEngine, ConversationState, TurnResult
from app.llm.base import Tier
from app.llm.router import TieredLLM
from app.rag.passage import Passage
from app.tools.registry import ToolBox
from harness.demo_backend import create_demo_backend
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
    tools=("check_order_status",),
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
def backend() -> Iterator[str]:
    with serving(create_demo_backend()) as url:
        yield url


async def test_passages_found_for_the_words_are_not_read_beside_a_lookups_result(
    backend: str,
) -> None:
    settings = factories.settings(
        order_api_url=backend,
        velox_tool_url_orgs="o1",
        velox_allow_private_tool_urls=True,
    )
    slm = FakeLLM(replies=["It shipped with UPS and arrives on Monday."])
    engine = ConversationEngine(llm=TieredLLM(slm=slm, tiers={}), toolbox=ToolBox(settings))
    state = ConversationState.start(AGENT)
    events = [
        e async for e in engine.respond(state, "Where is my order A1042?", sources=[DELIVERY])
    ]
    result = events[-1]
    assert isinstance(result, TurnResult)
    assert [(r.name, r.ok) for r in result.tool_runs] == [("check_order_status", True)]
    # The call was forced (no model round); the one round that speaks read the result alone.
    (prompt,) = slm.seen
    assert "Where is my order A1042?" in prompt[-3].content
    assert "12 Main Street" not in " ".join(m.content for m in prompt)
    assert result.sources == []  # not read, so not cited
    assert result.tier is Tier.SLM
