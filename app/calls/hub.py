"""CallHub: the live calls of one ingress replica, from the webhook that admits a call to the
end of its media stream."""

from __future__ import annotations

import logging

from app.calls.config import CallConfig
from app.calls.reader import MediaSocket
from app.calls.recorder import CallSummary
from app.calls.responder import APOLOGY
from app.calls.session import CallServices, CallSession
from app.conversation.agent import AgentProfile
from app.conversation.engine import MODEL_HOLDING_PHRASE, TOOL_HOLDING_PHRASE

logger = logging.getLogger(__name__)


class CallHub:
    """Creates one CallSession per media stream and keeps track of the live ones."""

    def __init__(self, services: CallServices, config: CallConfig) -> None:
        self._services = services
        self._config = config
        self.sessions: dict[int, CallSession] = {}

    @property
    def active(self) -> int:
        """Calls this replica is serving now."""
        return len(self.sessions)

    async def prewarm(self, agent: AgentProfile) -> None:
        """Synthesize `agent`'s greeting and the stock phrases so none waits on TTS in a call."""
        for text in (agent.greeting, APOLOGY, TOOL_HOLDING_PHRASE, MODEL_HOLDING_PHRASE):
            await self._services.phrases.get(text, agent.voice)

    async def agent_for_number(self, number: str) -> AgentProfile | None:
        """The agent that answers calls to `number` (None: nobody does)."""
        agent = await self._services.agents.for_number(number)
        if agent is not None:
            # Synthesize the greeting while Twilio opens the stream, so it plays at once.
            self._services.phrases.warm(agent.greeting, agent.voice)
        return agent

    async def serve(self, socket: MediaSocket) -> CallSummary:
        """Run one call on `socket` until it ends."""
        session = CallSession(socket, self._services, self._config)
        self.sessions[id(session)] = session
        try:
            return await session.run()
        finally:
            self.sessions.pop(id(session), None)
