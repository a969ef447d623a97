"""`transfer_to_agent` end to end below the call: the engine runs the tool, the live call is
redirected through Twilio's REST API (a local fake, reached by the official SDK) to a `<Dial>`,
and the handoff API gets the summary (the demo business API)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationEngine, ConversationState, ToolRan
from app.llm.base import Message, TextDelta, ToolCall
from app.llm.router import TieredLLM
from app.telephony.calls_api import TwilioCalls
from app.tools.registry import ToolBox
from harness.demo_backend import create_demo_backend
from harness.serving import serving
from tests import factories
from tests.fakes import FakeLLM
from tests.fakes.twilio_server import FakeTwilio

pytestmark = pytest.mark.integration

AGENT = AgentProfile(
    id="a1",
    name="Front desk",
    system_prompt="You answer the phone for Rosa's Bakery.",
    greeting="Hi!",
    org_id="o1",
    tools=("transfer_to_agent",),
    transfer_number="+15550100",
)


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    with serving(create_demo_backend()) as url:
        yield url


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


async def transfer(backend: str, twilio: FakeTwilio, call_sid: str) -> list[Any]:
    # The deployment's handoff URL serves AGENT's org only because it is on the allow-list.
    settings = factories.settings(handoff_api_url=backend, velox_tool_url_orgs="o1")
    calls = TwilioCalls(
        account_sid=twilio.account_sid, auth_token=twilio.auth_token, api_url=twilio.url
    )
    slm = FakeLLM(replies=[ToolCall("transfer_to_agent", {"reason": "wants a manager"}), "Sure."])
    engine = ConversationEngine(
        llm=TieredLLM(slm=slm),
        toolbox=ToolBox(settings, twilio=calls),
    )
    state = ConversationState.start(AGENT, call_sid=call_sid, caller_number="+15550199")
    state.history += [
        Message("user", "My cake arrived broken."),
        Message("assistant", "I'm sorry to hear that."),
    ]
    try:
        return [e async for e in engine.respond(state, "Let me talk to a manager.")]
    finally:
        await calls.aclose()


async def test_transfer_dials_the_team_and_sends_the_summary(
    backend: str, twilio: FakeTwilio
) -> None:
    twilio.add_call("CA00000000000000000000000000000001", "+15550199", "+15550123")
    events = await transfer(backend, twilio, "CA00000000000000000000000000000001")
    (ran,) = [e.outcome for e in events if isinstance(e, ToolRan)]
    assert ran.ok and ran.result == {"transferred": True, "to": "+15550100"}

    response = ET.fromstring(twilio.last_twiml("CA00000000000000000000000000000001"))
    assert response.findtext("Say") == "Please hold while I connect you."
    assert response.findtext("Dial") == "+15550100"

    handoffs = httpx.get(f"{backend}/handoffs").json()
    (handoff,) = [h for h in handoffs if h["call_sid"] == "CA00000000000000000000000000000001"]
    assert handoff["reason"] == "wants a manager"
    assert "My cake arrived broken." in handoff["summary"]
    assert handoff["transcript"][0] == {"role": "user", "text": "My cake arrived broken."}


async def test_a_refused_transfer_is_said_not_raised(
    backend: str, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    # Twilio answers 20404: the call is unknown to it (it ended a moment ago).
    events = await transfer(backend, twilio, "CA0000000000000000000000000000dead")
    (ran,) = [e.outcome for e in events if isinstance(e, ToolRan)]
    # Twilio's answer names our account's call: the log has it, the tenant's record does not.
    assert not ran.ok and ran.result == {"error": "the transfer did not go through"}
    assert "20404" not in str(ran.record()) and "20404" in caplog.text
    spoken = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert spoken == "I'm sorry, I couldn't transfer you just now."
