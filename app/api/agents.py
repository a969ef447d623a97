"""`/api/agents`: create, list, read, change, replace and delete an organization's voice agents."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Response, status
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field
from sqlalchemy import select

from app.api.crud import check_reference, commit_or_409, delete_or_404
from app.api.deps import AdminPrincipal, SettingsDep, TenantSession, get_or_404
from app.api.errors import FieldError, FieldValidationError, responses
from app.conversation.flows import FlowError, validate_flow
from app.conversation.routing import TierPolicy
from app.db.models import Agent, KnowledgeBase
from app.rag.policy import KnowledgeSettings
from app.settings import Settings
from app.tools.registry import HTTP_TOOL_NAMES, TOOL_NAMES, ToolName
from app.tools.transfer import HANDOFF
from app.tools.urls import tool_url_problem

router = APIRouter(prefix="/api/agents", tags=["agents"], responses=responses(401, 422))

if TYPE_CHECKING:
    HttpToolName = str
else:  # the tools that take a base URL, and the handoff notice
    HttpToolName = Literal[(*HTTP_TOOL_NAMES, HANDOFF)]


class ToolSettings(BaseModel):
    """Where the agent's tools go, when not where the deployment's settings say."""

    model_config = ConfigDict(extra="forbid")

    urls: dict[HttpToolName, AnyHttpUrl] = Field(
        default_factory=dict, description="base URL per HTTP tool (and 'handoff')"
    )
    transfer_number: str | None = Field(
        default=None, pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164 number transfers dial"
    )


class AgentFields(BaseModel):
    """What a client may set on an agent (all optional, for PATCH)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    system_prompt: str | None = Field(default=None, min_length=1, max_length=20_000)
    greeting: str | None = Field(default=None, min_length=1, max_length=1_000)
    voice_id: str | None = Field(default=None, min_length=1, max_length=100)
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    llm_policy: TierPolicy | None = None
    tools: list[ToolName] | None = None
    tool_settings: ToolSettings | None = None
    flow: dict[str, Any] | None = Field(
        default=None, description="conversation flow: {start, nodes[]} (validated; see docs)"
    )
    knowledge_base_id: uuid.UUID | None = None
    knowledge: KnowledgeSettings | None = None
    enabled: bool | None = None


class AgentCreate(AgentFields):
    """A whole agent (to create one, or to replace one with PUT): a name, a prompt and a
    greeting; the rest has defaults."""

    name: str = Field(min_length=1, max_length=200)
    system_prompt: str = Field(min_length=1, max_length=20_000)
    greeting: str = Field(min_length=1, max_length=1_000)
    voice_id: str = Field(default="joe", min_length=1, max_length=100)
    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    llm_policy: TierPolicy = Field(default_factory=TierPolicy)
    tools: list[ToolName] = Field(default_factory=list)
    tool_settings: ToolSettings = Field(default_factory=ToolSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    enabled: bool = True


class AgentOut(BaseModel):
    """An agent as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    system_prompt: str
    greeting: str
    voice_id: str
    language: str
    llm_policy: TierPolicy
    tools: list[str]
    tool_settings: ToolSettings
    flow: dict[str, Any] | None
    knowledge_base_id: uuid.UUID | None
    knowledge: KnowledgeSettings
    enabled: bool
    phone_numbers: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, agent: Agent) -> AgentOut:
        """Serialize a row (with its numbers)."""
        data = {c: getattr(agent, c) for c in cls.model_fields if c != "phone_numbers"}
        return cls(**data, phone_numbers=[p.number for p in agent.phone_numbers])


class AgentList(BaseModel):
    """All of the organization's agents, by name."""

    items: list[AgentOut]


@router.get("", summary="List agents")
async def list_agents(session: TenantSession) -> AgentList:
    """Every agent of the caller's organization."""
    rows = await session.scalars(select(Agent).order_by(Agent.name))
    return AgentList(items=[AgentOut.of(a) for a in rows])


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Create an agent", responses=responses(409)
)
async def create_agent(
    body: AgentCreate, session: TenantSession, settings: SettingsDep
) -> AgentOut:
    """A new agent in the caller's organization."""
    _check_tool_urls(body.tool_settings, settings)
    await _check_knowledge_base(session, body.knowledge_base_id)
    _check_flow(body.flow)
    agent = Agent(**body.model_dump(mode="json", exclude={"knowledge_base_id"}))
    agent.knowledge_base_id = body.knowledge_base_id
    session.add(agent)
    await commit_or_409(session, _name_taken(body.name))
    await session.refresh(agent)
    return AgentOut.of(agent)


@router.get("/{agent_id}", summary="Get an agent", responses=responses(404))
async def get_agent(agent_id: uuid.UUID, session: TenantSession) -> AgentOut:
    """One agent."""
    return AgentOut.of(await get_or_404(session, Agent, agent_id, "agent"))


@router.patch("/{agent_id}", summary="Change an agent", responses=responses(404, 409))
async def update_agent(
    agent_id: uuid.UUID, body: AgentFields, session: TenantSession, settings: SettingsDep
) -> AgentOut:
    """Change the fields given; the others stay as they are."""
    _check_tool_urls(body.tool_settings, settings)
    agent = await get_or_404(session, Agent, agent_id, "agent")
    changes = body.model_dump(mode="json", exclude_unset=True)
    required_fields = ("name", "system_prompt", "greeting", "voice_id", "language", "enabled")
    for required in (*required_fields, "llm_policy", "knowledge", "tools", "tool_settings"):
        if required in changes and changes[required] is None:
            raise FieldValidationError(f"body.{required}", "cannot be null")
    if "flow" in changes:
        _check_flow(body.flow)
    if "knowledge_base_id" in changes:
        await _check_knowledge_base(session, body.knowledge_base_id)
        changes["knowledge_base_id"] = body.knowledge_base_id
    for field, value in changes.items():
        setattr(agent, field, value)
    await commit_or_409(session, _name_taken(agent.name))
    await session.refresh(agent)
    return AgentOut.of(agent)


@router.put("/{agent_id}", summary="Replace an agent", responses=responses(404, 409))
async def replace_agent(
    agent_id: uuid.UUID, body: AgentCreate, session: TenantSession, settings: SettingsDep
) -> AgentOut:
    """Replace every field with the body's: an optional field left out goes back to its default
    (no flow, no knowledge base, no tools...). To change a few fields, PATCH."""
    _check_tool_urls(body.tool_settings, settings)
    agent = await get_or_404(session, Agent, agent_id, "agent")
    await _check_knowledge_base(session, body.knowledge_base_id)
    _check_flow(body.flow)
    for field, value in body.model_dump(mode="json", exclude={"knowledge_base_id"}).items():
        setattr(agent, field, value)
    agent.knowledge_base_id = body.knowledge_base_id
    await commit_or_409(session, _name_taken(body.name))
    await session.refresh(agent)
    return AgentOut.of(agent)


@router.delete(
    "/{agent_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an agent",
    responses=responses(403, 404),
)
async def delete_agent(
    agent_id: uuid.UUID, session: TenantSession, _admin: AdminPrincipal
) -> Response:
    """Delete the agent; its numbers stay with the organization, unassigned, and its past
    conversations keep their transcripts."""
    return await delete_or_404(session, Agent, agent_id, "agent")


async def _check_knowledge_base(session: TenantSession, kb_id: uuid.UUID | None) -> None:
    await check_reference(
        session, KnowledgeBase, kb_id, field="body.knowledge_base_id", what="knowledge base"
    )


def _check_tool_urls(tool_settings: ToolSettings | None, settings: Settings) -> None:
    # Here rather than in ToolSettings: the rule depends on VELOX_ALLOW_PRIVATE_TOOL_URLS, and
    # agents saved before it must still be readable (the tools re-check them at every request).
    if tool_settings is None:
        return
    allow_private = settings.tools.velox_allow_private_tool_urls
    problems = [
        FieldError(field=f"body.tool_settings.urls.{name}", message=f"tool URL {problem}")
        for name, url in tool_settings.urls.items()
        if (problem := tool_url_problem(str(url), allow_private=allow_private)) is not None
    ]
    if problems:
        raise FieldValidationError.of(problems)


def _check_flow(flow: dict[str, Any] | None) -> None:
    if flow is None:
        return
    try:
        validate_flow(flow, known_tools=TOOL_NAMES)
    except FlowError as exc:
        raise FieldValidationError.of(
            [FieldError(field=f"body.{p.path}", message=p.message) for p in exc.errors]
        ) from exc


def _name_taken(name: str) -> str:
    return f"an agent named {name!r} already exists"
