"""`/api/playground/chat`: talk to an agent in text, through the same engine as phone calls.

Each message runs one engine turn (prompt, routing, tools, knowledge, flow) and is stored in a
conversation marked `channel = "playground"`, so the dashboard shows it beside the calls. Send
the returned `conversation_id` back to continue; `stream: true` answers with server-sent events.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from app.agents.directory import knowledge_base_id, profile_of
from app.api.deps import (
    AgentKnowledgeDep,
    ConversationDep,
    CurrentPrincipal,
    RateLimitsDep,
    SettingsDep,
    TenantSession,
    TranscriptsDep,
    get_or_404,
)
from app.api.errors import responses
from app.api.rate_limits import TokenBudget
from app.conversation.agent import AgentProfile
from app.conversation.engine import (
    ConversationEngine,
    ConversationState,
    EndCall,
    EngineEvent,
    HoldingPhrase,
    StepChanged,
    ToolRan,
    TurnResult,
)
from app.conversation.flows import FlowState
from app.conversation.grounding import AgentKnowledge
from app.db.models import Agent, Organization
from app.llm.base import Message, TextDelta
from app.privacy import mask_key_after, redact_payment_data
from app.rag.passage import Passage
from app.transcripts.store import (
    ConversationNotFound,
    ConversationRef,
    ConversationStore,
    Opening,
    Transcript,
    TranscriptMoved,
    TurnEntry,
)

router = APIRouter(
    prefix="/api/playground", tags=["playground"], responses=responses(401, 404, 409, 422, 429)
)


class ChatRequest(BaseModel):
    """One message to the agent."""

    model_config = ConfigDict(extra="forbid")

    agent_id: uuid.UUID
    message: str | None = Field(default=None, min_length=1, max_length=4000)
    dtmf: str | None = Field(
        default=None, pattern=r"^[0-9*#]$", description="a keypad press instead of a message"
    )
    conversation_id: uuid.UUID | None = Field(
        default=None, description="continue this playground conversation (else a new one)"
    )
    stream: bool = Field(default=False, description="answer with server-sent events")

    @model_validator(mode="after")
    def _one_input(self) -> ChatRequest:
        if (self.message is None) == (self.dtmf is None):
            raise ValueError("send either a message or a dtmf key")
        return self


class ToolRun(BaseModel):
    """A tool the agent called, with what came back."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    result: dict[str, Any]
    latency_s: float
    error: str | None


class ChatReply(BaseModel):
    """The agent's answer and everything that produced it."""

    conversation_id: uuid.UUID
    reply: str
    tier: str | None
    model: str | None
    routing: dict[str, Any]
    tool_calls: list[ToolRun]
    passages: list[Passage]
    node: str | None
    holding_phrases: list[str]
    ended: bool = Field(description="the agent ended the conversation (end_call)")
    latency: dict[str, float | None]


@router.post(
    "/chat",
    summary="Chat with an agent",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat(
    body: ChatRequest,
    session: TenantSession,
    principal: CurrentPrincipal,
    conversation: ConversationDep,
    knowledge: AgentKnowledgeDep,
    store: TranscriptsDep,
    limits: RateLimitsDep,
    settings: SettingsDep,
) -> Any:
    """One turn of a text conversation with the agent, as it would go on a call."""
    org = str(principal.org_id)
    await limits.hit(limits.playground_turns, org, principal.subject)
    budget = TokenBudget(limits, org) if settings.models.gemini_api_key is not None else None
    if budget is not None:
        await budget.check()
    row = await get_or_404(session, Agent, body.agent_id, "agent")
    redact, kb_id = (
        await session.execute(
            select(Organization.redact_payment_data, knowledge_base_id())
            .select_from(Agent)
            .join(Organization, Organization.id == Agent.org_id)
            .where(Agent.id == row.id)
        )
    ).one()
    agent = profile_of(row, redact_payment_data=redact is not False, knowledge_base_id=kb_id)
    await session.commit()  # the agent is read: its connection goes back before the store's
    transcript = await _transcript(store, principal.org_id, body)
    state = _state(transcript, agent)
    text = body.message if body.message is not None else state.press(body.dtmf or "")
    text = _screen(state, text)
    turn = _PlaygroundTurn(
        conversation, knowledge, state, text, transcript.ref, transcript.last_seq, budget
    )
    if body.stream:
        return StreamingResponse(
            _sse(turn, store),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    async for _ in turn.events():
        pass
    return await _save(store, turn)


class _PlaygroundTurn:
    """Runs the engine for one message and keeps what the reply needs."""

    def __init__(
        self,
        conversation: ConversationEngine,
        knowledge: AgentKnowledge,
        state: ConversationState,
        text: str,
        ref: ConversationRef,
        answers_after: int,
        budget: TokenBudget | None = None,
    ) -> None:
        self.conversation = conversation
        self.budget = budget
        self.knowledge = knowledge
        self.state = state
        self.text = text
        self.ref = ref
        self.answers_after = answers_after  # the transcript's last place when the turn began
        self.result = TurnResult()
        self.holding: list[str] = []
        self.ended = False
        self.started_at = time.time()
        self.started = time.monotonic()
        self.grounding_s = 0.0

    async def events(self) -> AsyncIterator[EngineEvent]:
        sources = await self.knowledge.context(self.state.agent, self.text)
        self.grounding_s = time.monotonic() - self.started
        async for event in self.conversation.respond(self.state, self.text, sources):
            if isinstance(event, HoldingPhrase):
                self.holding.append(event.text)
            elif isinstance(event, EndCall):
                self.ended = True
            elif isinstance(event, TurnResult):
                self.result = event
            yield event

    def reply(self) -> ChatReply:
        result = self.result
        return ChatReply(
            conversation_id=self.ref.id,
            reply=result.text,
            tier=result.tier.value if result.tier else None,
            model=result.model,
            routing=result.routing_record(),
            tool_calls=[ToolRun(**run.record()) for run in result.tool_runs],
            passages=result.sources,
            node=result.node,
            holding_phrases=self.holding,
            ended=self.ended,
            latency={
                "knowledge_s": round(self.grounding_s, 3),
                "first_text_s": _round(result.first_text_s),
                "total_s": round(time.monotonic() - self.started, 3),
            },
        )

    def entry(self, reply: ChatReply) -> TurnEntry:
        """The exchange as the transcript keeps it."""
        result = self.result
        return TurnEntry(
            caller_text=self.text,
            agent_text=result.text,
            intended_text=result.text,
            started_at=self.started_at,
            ended_at=time.time(),
            latency={k: v for k, v in reply.latency.items() if v is not None},
            model=result.model,
            tool_calls=[run.record() for run in result.tool_runs],
            citations=[s.citation() for s in result.sources],
            routing=result.routing_record(),
            llm_tokens=result.tokens_by_tier(),
            node=result.node,
        )


def _round(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


async def _sse(turn: _PlaygroundTurn, store: ConversationStore) -> AsyncIterator[str]:
    """`text` events as the reply is generated, `holding`, `tool` and `step` as they happen,
    and one `done` with the whole ChatReply (saved by then)."""
    async for event in turn.events():
        if isinstance(event, TextDelta):
            yield _event("text", {"text": event.text})
        elif isinstance(event, HoldingPhrase):
            yield _event("holding", {"text": event.text})
        elif isinstance(event, ToolRan):
            yield _event("tool", event.outcome.record())
        elif isinstance(event, StepChanged):
            yield _event("step", {"from": event.from_node, "to": event.to_node, "via": event.via})
    try:
        reply = await _save(store, turn)
    except HTTPException as exc:  # the status line is sent: report it in the stream
        yield _event("error", {"code": "conflict", "message": str(exc.detail)})
        return
    yield _event("done", reply.model_dump(mode="json"))


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


async def _transcript(store: ConversationStore, org_id: uuid.UUID, body: ChatRequest) -> Transcript:
    """A new playground conversation (stored before the slow turn runs), or the one to go on."""
    if body.conversation_id is None:
        ref = ConversationRef.new(org_id, time.time())
        return await store.open(ref, Opening(agent_id=body.agent_id, channel="playground"))
    try:
        transcript = await store.read(org_id, body.conversation_id)
    except ConversationNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    conversation_id = transcript.ref.id
    if transcript.channel != "playground" or transcript.agent_id != body.agent_id:
        raise HTTPException(
            409, f"conversation {conversation_id} is not a playground chat with this agent"
        )
    if transcript.status != "in_progress":
        raise HTTPException(409, f"conversation {conversation_id} has ended; start a new one")
    return transcript


def _screen(state: ConversationState, text: str) -> str:
    """The message as the model and the transcript get it: payment data and keyed-in digits
    cut out (`app.privacy`), unless the organization turned that off."""
    if not state.agent.redact_payment_data:
        return text
    previous = next((m.content for m in reversed(state.history) if m.role == "user"), None)
    return mask_key_after(previous, redact_payment_data(text).text)


def _state(transcript: Transcript, agent: AgentProfile) -> ConversationState:
    """The conversation as the engine left it: history with tool calls, and flow step."""
    flow = None
    if agent.flow is not None:
        try:
            flow = FlowState(agent.flow, transcript.current_node)
        except ValueError:  # the flow was edited and lost that node: start it again
            flow = FlowState(agent.flow)
    return ConversationState(
        agent=agent,
        # A call opens with the greeting and the model reads it first: so does the playground,
        # which answers "as it would go on a call" (same prompt, same cached prefix).
        history=[Message("assistant", agent.greeting), *transcript.history],
        flow=flow,
        conversation_id=str(transcript.ref.id),
        channel="playground",
    )


async def _save(store: ConversationStore, turn: _PlaygroundTurn) -> ChatReply:
    """Store the exchange and the conversation's running cost; return the reply."""
    reply = turn.reply()
    if turn.budget is not None:
        await turn.budget.spend(turn.result.cloud_tokens())
    try:
        # The reply answers the transcript as it was read: if another message was stored since,
        # this one is refused, not stored after an exchange it never saw.
        await store.append_reply(
            turn.ref,
            turn.entry(reply),
            after_seq=turn.answers_after,
            end_reason="the agent ended the conversation" if turn.ended else None,
        )
    except ConversationNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except TranscriptMoved as exc:
        raise HTTPException(409, f"{exc}; retry") from exc
    return reply
