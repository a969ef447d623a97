"""CallHub: what an ingress replica shares between its calls, and the registry of live calls."""

from __future__ import annotations

import logging
import uuid

from app.calls.directory import AgentDirectory
from app.calls.phrases import PhraseCache
from app.calls.recorder import CallRecorder, CallSummary
from app.calls.session import APOLOGY, CallSession, Engines, MediaSocket, ReplicaLoad
from app.conversation.agent import AgentProfile
from app.conversation.engine import MODEL_HOLDING_PHRASE, TOOL_HOLDING_PHRASE, ConversationEngine
from app.conversation.grounding import Source
from app.conversation.toolbox import ToolBox
from app.conversation.tools import HttpTools
from app.llm.router import as_router
from app.observability.metrics import Metrics
from app.rag.service import KnowledgeService
from app.settings import Settings
from app.telephony.calls_api import TwilioCalls

logger = logging.getLogger(__name__)


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
        self.recorder = recorder
        self.phrases = PhraseCache(engines.tts)
        self.default_agent = AgentProfile.default(settings)
        # Without a directory (database-less tests) the settings' agent answers every call.
        self.directory = directory
        self.knowledge = knowledge
        self.sessions: dict[str, CallSession] = {}
        self.load = ReplicaLoad()
        self.toolbox = ToolBox(
            http=HttpTools(settings),
            twilio=TwilioCalls.from_settings(settings),
            lookup=self.search if knowledge is not None else None,
            transfer_number=settings.transfer_number,
        )
        self.conversation = ConversationEngine(
            llm=as_router(engines.llm),
            toolbox=self.toolbox,
            holding_after_s=settings.holding_phrase_after_s,
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
        if self.directory is None:
            return self.default_agent
        agent = await self.directory.for_number(number)
        if agent is not None:
            # Synthesize the greeting while Twilio opens the stream, so it plays at once.
            self.phrases.warm(agent.greeting, agent.voice)
        return agent

    async def agent_for_stream(self, parameters: dict[str, str]) -> AgentProfile | None:
        """The agent named by the stream's parameters (set by our own signed TwiML)."""
        if self.directory is None:
            return self.default_agent
        try:
            org_id, agent_id = uuid.UUID(parameters["orgId"]), uuid.UUID(parameters["agentId"])
        except (KeyError, ValueError):
            return None
        return await self.directory.by_id(org_id, agent_id)

    async def lookup(self, agent: AgentProfile, question: str) -> list[Source]:
        """Passages of the agent's knowledge base for the caller's words (automatic context)."""
        if not agent.knowledge.auto_context:
            return []
        return await self.search(agent, question)

    async def search(self, agent: AgentProfile, question: str) -> list[Source]:
        """Passages of the agent's knowledge base (the search_knowledge_base tool)."""
        settings = agent.knowledge
        if self.knowledge is None:
            return []
        if agent.org_id is None or agent.knowledge_base_id is None:
            return []
        hits = await self.knowledge.context(
            uuid.UUID(agent.org_id), uuid.UUID(agent.knowledge_base_id), question, settings
        )
        return [
            Source(
                document_id=str(h.document_id),
                document_name=h.document_name,
                chunk_id=str(h.chunk_id),
                position=h.position,
                heading=h.heading,
                text=h.text,
            )
            for h in hits
        ]

    async def serve(self, socket: MediaSocket) -> CallSummary:
        """Run one call on `socket` until it ends."""
        session = CallSession(
            socket,
            engines=self.engines,
            settings=self.settings,
            metrics=self.metrics,
            recorder=self.recorder,
            phrases=self.phrases,
            agent_for=self.agent_for_stream,
            conversation=self.conversation,
            lookup=self.lookup if self.knowledge is not None else None,
            load=self.load,
        )
        key = str(id(session))
        self.sessions[key] = session
        try:
            return await session.run()
        finally:
            self.sessions.pop(key, None)
