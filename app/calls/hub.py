"""CallHub: the live calls of one ingress replica, from the webhook that admits a call to the
end of its media stream."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from app.call_state.store import StreamGrant
from app.calls.config import CallConfig
from app.calls.reader import MediaSocket
from app.calls.recorder import CallSummary
from app.calls.responder import APOLOGY
from app.calls.session import CallServices, CallSession
from app.conversation.agent import AgentProfile
from app.conversation.engine import WAITING_PHRASES

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """What Twilio's signed incoming-call webhook said about a call."""

    call_sid: str
    account_sid: str
    from_number: str
    to_number: str


@dataclass(frozen=True, slots=True)
class Connect:
    """Answer the call: this agent, over the one stream that brings this token."""

    agent: AgentProfile
    token: str


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
        for text in (agent.greeting, APOLOGY, *WAITING_PHRASES):
            await self._services.phrases.get(text, agent.voice)

    async def answer(self, call: IncomingCall) -> Connect | Literal["not_in_service", "busy"]:
        """Decide what happens to an incoming call: which agent answers it, over which stream -
        or nobody answers the number, or its organization is on as many calls as it may be."""
        agent = await self._services.agents.for_number(call.to_number)
        if agent is None:
            return "not_in_service"
        org_id = agent.org_id or ""
        if await self._services.admission.at_capacity(org_id):
            return "busy"
        # Synthesize the greeting while Twilio opens the stream, so it plays at once.
        self._services.phrases.warm(agent.greeting, agent.voice)
        grant = StreamGrant(
            call_sid=call.call_sid,
            account_sid=call.account_sid,
            org_id=org_id,
            agent_id=agent.id,
            from_number=call.from_number,
            to_number=call.to_number,
        )
        return Connect(agent=agent, token=await self._services.admission.issue(grant))

    async def serve(self, socket: MediaSocket) -> CallSummary:
        """Run one call on `socket` until it ends."""
        session = CallSession(socket, self._services, self._config)
        self.sessions[id(session)] = session
        try:
            return await session.run()
        finally:
            self.sessions.pop(id(session), None)
