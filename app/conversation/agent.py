"""The agent a call talks to: its prompt, greeting and voice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from app.conversation.flows import FlowSpec
from app.conversation.routing import TierPolicy
from app.rag.policy import KnowledgeSettings
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
    org_id: str | None = None  # None only for the settings-built agent of database-less tests
    knowledge_base_id: str | None = None
    knowledge: KnowledgeSettings = field(default_factory=KnowledgeSettings)
    policy: TierPolicy = field(default_factory=TierPolicy)
    tools: tuple[str, ...] = ()
    tool_urls: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    transfer_number: str | None = None
    flow: FlowSpec | None = None
    # Card numbers and security codes are cut from the caller's words (the org's setting).
    redact_payment_data: bool = True

    @classmethod
    def default(cls, settings: Settings) -> AgentProfile:
        """The agent built from settings: the demo organization's agent is seeded from it."""
        return cls(
            id="default",
            name=settings.telephony.velox_agent_name,
            system_prompt=settings.telephony.velox_system_prompt,
            greeting=settings.telephony.velox_greeting,
            voice=settings.speech.velox_voice,
        )
