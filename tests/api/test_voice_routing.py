"""`/voice/incoming` finds the agent by the called number; unknown numbers are told politely."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET

import httpx
import pytest

from app.agents.directory import AgentDirectory
from app.call_state.admission import TOKEN_PARAMETER, CallAdmission
from app.db.demo import ensure_demo_org
from app.services import Services
from app.settings import Settings
from app.telephony.messages import StartEvent, parse_inbound
from harness.simulator.phone import TwilioStream
from tests import factories
from tests.api.conftest import Tenant, agent_body

pytestmark = pytest.mark.integration


def call(to: str) -> dict[str, str]:
    return {
        "CallSid": "CA" + "c" * 32,
        "From": "+15550199",
        "To": to,
        "AccountSid": "AC" + "d" * 32,
    }


def stream_parameters(twiml: str) -> dict[str, str]:
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    assert stream is not None, twiml
    return {p.attrib["name"]: p.attrib["value"] for p in stream}


def hangs_up_politely(twiml: str) -> bool:
    root = ET.fromstring(twiml)
    say = root.find("./Say")
    return (
        say is not None
        and "not in service" in (say.text or "")
        and root.find("./Hangup") is not None
    )


async def test_the_numbers_agent_answers(
    org_a: Tenant, anonymous: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    agent = (await org_a.client.post("/api/agents", json=agent_body())).json()
    await org_a.client.post(
        "/api/phone-numbers", json={"number": "+14155550201", "agent_id": agent["id"]}
    )
    response = await anonymous.post("/voice/incoming", data=call("+14155550201"))
    assert response.status_code == 200
    params = stream_parameters(response.text)
    assert list(params) == [TOKEN_PARAMETER]
    # The stream that brings the token gets the call as the webhook filed it, whatever else its
    # `start` claims.
    stream = TwilioStream(
        stream_sid="MZ" + "e" * 32,
        call_sid=call("")["CallSid"],
        account_sid=call("")["AccountSid"],
        custom_parameters={**params, "orgId": str(uuid.uuid4()), "from": "+19995550000"},
    )
    admission = CallAdmission(services.calls, AgentDirectory(services.db, settings))
    start = parse_inbound(json.dumps(stream.start()))
    assert isinstance(start, StartEvent)
    admitted = await admission.admit(start)
    assert admitted.agent.id == agent["id"] and admitted.org_id == str(org_a.org_id)
    assert (admitted.from_number, admitted.to_number) == ("+15550199", "+14155550201")
    await admission.release(admitted)


async def test_unknown_unassigned_and_disabled_numbers_hang_up(
    org_a: Tenant, anonymous: httpx.AsyncClient
) -> None:
    await org_a.client.post("/api/phone-numbers", json={"number": "+14155550202"})
    off = (await org_a.client.post("/api/agents", json=agent_body(enabled=False))).json()
    await org_a.client.post(
        "/api/phone-numbers", json={"number": "+14155550203", "agent_id": off["id"]}
    )
    for number in ("+14155550200", "+14155550202", "+14155550203"):
        response = await anonymous.post("/voice/incoming", data=call(number))
        assert response.status_code == 200 and hangs_up_politely(response.text), number


async def test_demo_agent_answers_only_unclaimed_numbers(
    services: Services, settings: Settings, org_a: Tenant
) -> None:
    demo_settings = settings.replace(velox_demo_agent=True)
    demo_org = await ensure_demo_org(services.db, demo_settings)
    assert await ensure_demo_org(services.db, demo_settings) == demo_org  # idempotent
    directory = AgentDirectory(services.db, demo_settings)
    agent = await directory.for_number("+14155550299")
    assert agent is not None and agent.org_id == str(demo_org)
    assert agent.greeting == settings.telephony.velox_greeting
    await org_a.client.post("/api/phone-numbers", json={"number": "+14155550298"})
    assert await directory.for_number("+14155550298") is None  # claimed, no agent: nobody
    assert await AgentDirectory(services.db, settings).for_number("+14155550299") is None


def test_demo_is_off_when_clerk_or_stripe_is_configured() -> None:
    assert factories.settings().demo_agent_enabled
    assert not factories.settings(velox_host="0.0.0.0").demo_agent_enabled  # a public server
    assert not factories.settings(clerk_secret_key="sk").demo_agent_enabled
    assert not factories.settings(stripe_secret_key="sk").demo_agent_enabled
    assert not factories.settings(velox_demo_agent=False).demo_agent_enabled


async def test_health_reports_the_data_layer(anonymous: httpx.AsyncClient) -> None:
    health = (await anonymous.get("/health")).json()
    assert health["status"] == "ok"
    assert health["database"] == {"kind": "external", "reachable": True}
    assert health["call_state"] == "redis" and health["clerk_auth"] is True
