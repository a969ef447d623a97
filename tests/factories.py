"""Building blocks every test layer needs, made one way: settings that ignore the machine's
environment files, a test agent, and the parts of a call wired to scripted engines."""

from __future__ import annotations

from typing import Any

from app.agents.directory import SingleAgent
from app.call_state.admission import TOKEN_PARAMETER, CallAdmission
from app.call_state.store import MemoryCallState, StreamGrant
from app.calls.config import CallConfig
from app.calls.hub import CallHub
from app.calls.phrases import PhraseCache
from app.calls.responder import ReplicaLoad
from app.calls.session import CallServices
from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationEngine
from app.conversation.grounding import KnowledgeLookup
from app.engines import Engines
from app.llm.router import as_router
from app.observability.metrics import Metrics
from app.settings import Settings
from app.tools.registry import ToolBox
from tests.fakes import FakeLLM, FakeSTT, FakeTTS, MemoryRecorder


def settings(**overrides: Any) -> Settings:
    """Settings from defaults and `overrides` only: no .env file of the machine running tests."""
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def agent(**overrides: Any) -> AgentProfile:
    """A short-spoken test agent."""
    fields: dict[str, Any] = {
        "id": "default",
        "name": "Test",
        "system_prompt": "Be brief.",
        "greeting": "Hello, how can I help?",
        **overrides,
    }
    return AgentProfile(**fields)


def engines(stt: Any = None, llm: Any = None, tts: Any = None) -> Engines:
    """Scripted engines, any of them replaced."""
    return Engines(stt=stt or FakeSTT(), llm=llm or FakeLLM(), tts=tts or FakeTTS())


def call_services(
    config: Settings,
    engines: Engines,
    *,
    agent: AgentProfile,
    recorder: MemoryRecorder | None = None,
    lookup: KnowledgeLookup | None = None,
    load: ReplicaLoad | None = None,
    toolbox: ToolBox | None = None,
    metrics: Metrics | None = None,
) -> CallServices:
    """What a replica's calls share, around `engines`, with `agent` answering every call."""
    agents = SingleAgent(agent)
    return CallServices(
        stt=engines.stt,
        tts=engines.tts,
        conversation=ConversationEngine(
            llm=as_router(engines.llm), toolbox=toolbox or ToolBox(config)
        ),
        agents=agents,
        admission=CallAdmission(
            MemoryCallState(),
            agents,
            replica="test-replica",
            token_ttl_s=config.telephony.stream_token_ttl_s,
            max_calls_per_org=config.telephony.velox_max_calls_per_org,
        ),
        recorder=recorder or MemoryRecorder(),
        phrases=PhraseCache(engines.tts),
        metrics=metrics or Metrics(),
        lookup=lookup,
        load=load or ReplicaLoad(),
    )


def call_hub(
    config: Settings, engines: Engines, *, agent: AgentProfile, metrics: Metrics
) -> CallHub:
    """Live calls of a database-less replica, `agent` answering every number."""
    services = call_services(config, engines, agent=agent, metrics=metrics)
    return CallHub(services, CallConfig.from_settings(config))


async def stream_parameters(
    services: CallServices, *, call_sid: str, account_sid: str, from_number: str = "+15550199"
) -> dict[str, str]:
    """The `<Parameter>`s the webhook would give the stream of this call to the one agent."""
    agent = await services.agents.for_number("+15550100")
    assert agent is not None
    grant = StreamGrant(
        call_sid=call_sid,
        account_sid=account_sid,
        org_id=agent.org_id or "",
        agent_id=agent.id,
        from_number=from_number,
        to_number="+15550100",
    )
    return {TOKEN_PARAMETER: await services.admission.issue(grant)}
