"""CallHub: what an ingress replica shares between its calls, and the registry of live calls."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.agents.directory import AgentDirectory, SingleAgent
from app.calls.config import CallConfig
from app.calls.phrases import PhraseCache
from app.calls.reader import MediaSocket
from app.calls.recorder import CallRecorder, CallSummary
from app.calls.responder import APOLOGY
from app.calls.session import CallServices, CallSession
from app.conversation.agent import AgentProfile
from app.conversation.engine import MODEL_HOLDING_PHRASE, TOOL_HOLDING_PHRASE, ConversationEngine
from app.conversation.grounding import AgentKnowledge, Source
from app.llm.base import LanguageModel
from app.llm.router import RoutingLLM, as_router
from app.observability.metrics import Metrics
from app.rag.service import KnowledgeService
from app.settings import Settings
from app.speech.base import SpeechToText, TextToSpeech
from app.telephony.calls_api import TwilioCalls
from app.tools.registry import ToolBox

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Engines:
    """The three model roles a call uses."""

    stt: SpeechToText
    llm: LanguageModel | RoutingLLM  # a bare model is wrapped in a router by the hub
    tts: TextToSpeech


class CallHub:
    """Creates one CallSession per media stream and keeps track of the live ones."""

    def __init__(
        self,
        *,
        engines: Engines,
        settings: Settings,
        metrics: Metrics,
        recorder: CallRecorder,
        directory: AgentDirectory | None = None,
        knowledge: KnowledgeService | None = None,
    ) -> None:
        self.engines = engines
        self.settings = settings
        self.metrics = metrics
        self.phrases = PhraseCache(engines.tts)
        self.default_agent = AgentProfile.default(settings)
        # Without a directory (database-less tests) the settings' agent answers every call.
        self.agents = directory or SingleAgent(self.default_agent)
        self.knowledge = AgentKnowledge(knowledge) if knowledge is not None else None
        self.sessions: dict[str, CallSession] = {}
        self.toolbox = ToolBox(
            settings,
            twilio=TwilioCalls.from_settings(settings),
            lookup=self.knowledge.search if self.knowledge is not None else None,
            transfer_number=settings.transfer_number,
        )
        self.conversation = ConversationEngine(
            llm=as_router(engines.llm),
            toolbox=self.toolbox,
            holding_after_s=settings.holding_phrase_after_s,
        )
        self.call_config = CallConfig.from_settings(settings)
        self.call_services = CallServices(
            stt=engines.stt,
            tts=engines.tts,
            conversation=self.conversation,
            agents=self.agents,
            recorder=recorder,
            phrases=self.phrases,
            metrics=metrics,
            lookup=self.knowledge.context if self.knowledge is not None else None,
        )
        if settings.twilio_auth_token is None:
            logger.warning(
                "TWILIO_AUTH_TOKEN is not set: X-Twilio-Signature is NOT checked, so anyone who "
                "can reach this server can place calls. Set it before exposing the server."
            )

    async def prewarm(self) -> None:
        """Synthesize the default greeting and the apology so neither waits on TTS in a call."""
        for text in (
            self.default_agent.greeting,
            APOLOGY,
            TOOL_HOLDING_PHRASE,
            MODEL_HOLDING_PHRASE,
        ):
            await self.phrases.get(text, self.default_agent.voice)

    async def agent_for_number(self, number: str) -> AgentProfile | None:
        """The agent that answers calls to `number` (None: nobody does)."""
        agent = await self.agents.for_number(number)
        if agent is not None:
            # Synthesize the greeting while Twilio opens the stream, so it plays at once.
            self.phrases.warm(agent.greeting, agent.voice)
        return agent

    async def lookup(self, agent: AgentProfile, question: str) -> list[Source]:
        """Passages of the agent's knowledge base for the caller's words (automatic context)."""
        if self.knowledge is None:
            return []
        return await self.knowledge.context(agent, question)

    async def serve(self, socket: MediaSocket) -> CallSummary:
        """Run one call on `socket` until it ends."""
        session = CallSession(socket, self.call_services, self.call_config)
        key = str(id(session))
        self.sessions[key] = session
        try:
            return await session.run()
        finally:
            self.sessions.pop(key, None)
