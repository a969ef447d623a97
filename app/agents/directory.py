"""Which agent answers a call: by the called number, else the demo agent, else nobody."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import ColumnElement, func, select

from app.conversation.agent import AgentProfile
from app.conversation.flows import FlowError, FlowSpec, validate_flow
from app.conversation.routing import TierPolicy
from app.db.database import Database
from app.db.models import (
    DEFAULT_KNOWLEDGE_BASE_NAME,
    Agent,
    KnowledgeBase,
    Organization,
    PhoneNumber,
)
from app.rag.policy import KnowledgeSettings
from app.settings import Settings
from app.tools.registry import TOOL_NAMES

logger = logging.getLogger(__name__)


class AgentDirectory:
    """Looks agents up across organizations (the phone number is the tenant key here)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.demo_enabled = settings.demo_agent_enabled

    async def for_number(self, number: str) -> AgentProfile | None:
        """The agent for a call to `number`; None when nobody answers it.

        A number an organization claimed is answered by its agent, or by nobody when that agent
        is unassigned or disabled; only numbers nobody claimed reach the demo agent.
        """
        async with self.db.system() as session:
            # One query: the number, and its agent when that agent is the same org's and enabled.
            row = await session.execute(
                select(PhoneNumber.id, Agent, Organization.redact_payment_data, knowledge_base_id())
                .join(Organization, Organization.id == PhoneNumber.org_id)
                .outerjoin(
                    Agent,
                    (Agent.id == PhoneNumber.agent_id)
                    & (Agent.org_id == PhoneNumber.org_id)
                    & Agent.enabled.is_(True),
                )
                .where(PhoneNumber.number == number)
            )
            claimed = row.first()
        if claimed is not None:
            _, agent, redact, kb_id = claimed
            if agent is None:
                return None
            return profile_of(agent, redact_payment_data=redact, knowledge_base_id=kb_id)
        return await self.demo_agent() if self.demo_enabled else None

    async def by_id(self, org_id: str, agent_id: str) -> AgentProfile | None:
        """An enabled agent of `org_id` (None for ids that are not ours)."""
        try:
            org, agent_uuid = uuid.UUID(org_id), uuid.UUID(agent_id)
        except ValueError:
            return None
        async with self.db.tenant(org) as session:
            found = (
                await session.execute(
                    select(Agent, Organization.redact_payment_data, knowledge_base_id())
                    .join(Organization, Organization.id == Agent.org_id)
                    .where(Agent.id == agent_uuid, Agent.enabled.is_(True))
                )
            ).first()
        return _profile(found)

    async def call_cap(self, org_id: str) -> int | None:
        """The org's own cap on concurrent calls (None: the deployment's)."""
        try:
            org = uuid.UUID(org_id)
        except ValueError:
            return None
        async with self.db.system() as session:
            return await session.scalar(
                select(Organization.max_concurrent_calls).where(Organization.id == org)
            )

    async def demo_agent(self) -> AgentProfile | None:
        """The demo organization's first agent."""
        async with self.db.system() as session:
            found = (
                await session.execute(
                    select(Agent, Organization.redact_payment_data, knowledge_base_id())
                    .join(Organization, Organization.id == Agent.org_id)
                    .where(Organization.is_demo, Agent.enabled.is_(True))
                    .order_by(Agent.created_at)
                    .limit(1)
                )
            ).first()
        return _profile(found)


class SingleAgent:
    """One agent answers every number and every stream (`velox dev` without a database, and
    tests)."""

    def __init__(self, agent: AgentProfile) -> None:
        self.agent = agent

    async def for_number(self, number: str) -> AgentProfile | None:
        """The one agent, whatever the number."""
        return self.agent

    async def by_id(self, org_id: str, agent_id: str) -> AgentProfile | None:
        """The one agent, when the ids are its own."""
        if (org_id, agent_id) == (self.agent.org_id or "", self.agent.id):
            return self.agent
        return None


def knowledge_base_id() -> ColumnElement[uuid.UUID | None]:
    """The agent's knowledge base, else its organization's default one: the documents a business
    uploads without naming a knowledge base answer its agents' calls, as they answer search."""
    default = (
        select(KnowledgeBase.id)
        .where(
            KnowledgeBase.org_id == Agent.org_id,
            KnowledgeBase.name == DEFAULT_KNOWLEDGE_BASE_NAME,
        )
        .correlate(Agent)
        .scalar_subquery()
    )
    return func.coalesce(Agent.knowledge_base_id, default)


def _profile(found: Any) -> AgentProfile | None:
    """The profile of an (agent, redact_payment_data, knowledge_base_id) row, if one was found."""
    if found is None:
        return None
    agent, redact, kb_id = found
    return profile_of(agent, redact_payment_data=redact, knowledge_base_id=kb_id)


def profile_of(
    agent: Agent, *, redact_payment_data: bool = True, knowledge_base_id: uuid.UUID | None = None
) -> AgentProfile:
    """What calls and the playground need to know about an agent row (and its org's privacy
    setting, `Organization.redact_payment_data`). `knowledge_base_id` is the one it answers
    from (`knowledge_base_id()`), the agent's own when not given."""
    kb_id = knowledge_base_id or agent.knowledge_base_id
    return AgentProfile(
        id=str(agent.id),
        org_id=str(agent.org_id),
        name=agent.name,
        system_prompt=agent.system_prompt,
        greeting=agent.greeting,
        voice=agent.voice_id,
        language=agent.language,
        knowledge_base_id=str(kb_id) if kb_id else None,
        knowledge=KnowledgeSettings.from_json(agent.knowledge),
        policy=TierPolicy.from_json(agent.llm_policy),
        tools=tuple(agent.tools),
        tool_urls=dict(agent.tool_settings.get("urls") or {}),
        transfer_number=agent.tool_settings.get("transfer_number"),
        flow=_flow(agent),
        redact_payment_data=redact_payment_data,
    )


def _flow(agent: Agent) -> FlowSpec | None:
    if not agent.flow:
        return None
    try:
        return validate_flow(agent.flow, known_tools=TOOL_NAMES)
    except FlowError:  # the API validates flows; one broken row must not stop calls
        logger.exception("agent %s has an invalid flow; answering without it", agent.id)
        return None
