"""CallHub: what an ingress replica shares between its calls, and the registry of live calls."""

from __future__ import annotations

import logging
from collections.abc import Callable

from app.calls.phrases import PhraseCache
from app.calls.recorder import CallRecorder, CallSummary
from app.calls.session import APOLOGY, CallSession, Engines, MediaSocket, ReplicaLoad
from app.conversation.agent import AgentProfile
from app.observability.metrics import Metrics
from app.settings import Settings

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
        agent_for: Callable[[dict[str, str]], AgentProfile] | None = None,
    ) -> None:
        self.engines = engines
        self.settings = settings
        self.metrics = metrics
        self.recorder = recorder
        self.phrases = PhraseCache(engines.tts)
        self.default_agent = AgentProfile.default(settings)
        self._agent_for = agent_for or (lambda _params: self.default_agent)
        self.sessions: dict[str, CallSession] = {}
        self.load = ReplicaLoad()
        if settings.twilio_auth_token is None:
            logger.warning(
                "TWILIO_AUTH_TOKEN is not set: X-Twilio-Signature is NOT checked, so anyone who "
                "can reach this server can place calls. Set it before exposing the server."
            )

    async def prewarm(self) -> None:
        """Synthesize the default greeting and the apology so neither waits on TTS in a call."""
        for text in (self.default_agent.greeting, APOLOGY):
            await self.phrases.get(text, self.default_agent.voice)

    async def serve(self, socket: MediaSocket) -> CallSummary:
        """Run one call on `socket` until it ends."""
        session = CallSession(
            socket,
            engines=self.engines,
            settings=self.settings,
            metrics=self.metrics,
            recorder=self.recorder,
            phrases=self.phrases,
            agent_for=self._agent_for,
            load=self.load,
        )
        key = str(id(session))
        self.sessions[key] = session
        try:
            return await session.run()
        finally:
            self.sessions.pop(key, None)
