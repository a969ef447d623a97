"""The agent a call talks to: its prompt, greeting and voice."""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """What the call loop needs to know about an agent."""

    id: str
    name: str
    system_prompt: str
    greeting: str
    voice: str | None = None
    language: str = "en"

    @classmethod
    def default(cls, settings: Settings) -> AgentProfile:
        """The agent that answers every number until the data layer assigns agents to numbers."""
        return cls(
            id="default",
            name=settings.velox_agent_name,
            system_prompt=settings.velox_system_prompt,
            greeting=settings.velox_greeting,
            voice=settings.velox_voice,
        )
