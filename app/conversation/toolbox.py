"""The tool registry of a replica: which tools an agent is offered at a step, and running them.

The four business tools go over HTTP (`tools.HttpTools`); `transfer_to_agent` moves the live call
through Twilio's REST API and notifies the handoff API; `search_knowledge_base` runs the hybrid
search on the agent's knowledge base; `end_call` only reports back (the call session hangs up
once the goodbye has been heard). A tool that cannot work here is not offered at all.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from app.conversation.agent import AgentProfile
from app.conversation.flows import TRANSITION_TOOL
from app.conversation.grounding import KnowledgeLookup
from app.conversation.tools import HTTP_TOOLS, TOOL_SPECS, HttpTools, ToolContext, ToolOutcome
from app.llm.base import ToolCall, ToolSpec
from app.telephony.calls_api import TwilioCalls, TwilioUnavailable

if TYPE_CHECKING:
    from app.conversation.engine import ConversationState, TurnResult

logger = logging.getLogger(__name__)

TRANSFER_ANNOUNCEMENT = "Please hold while I connect you."


class ToolBox:
    """Offers and runs the built-in tools for every conversation of this replica."""

    def __init__(
        self,
        *,
        http: HttpTools,
        twilio: TwilioCalls | None = None,
        lookup: KnowledgeLookup | None = None,
        transfer_number: str | None = None,
    ) -> None:
        self.http = http
        self.twilio = twilio
        self.lookup = lookup
        self.transfer_number = transfer_number

    def specs(self, state: ConversationState) -> list[ToolSpec]:
        """The tools the model may call now: the agent's (the flow step's, in a flow) that can
        work here, plus the flow's `go_to_step`."""
        agent = state.agent
        names = list(agent.tools)
        if state.flow is not None:
            names = state.flow.allowed_tools(names)
        specs = [TOOL_SPECS[n] for n in names if n in TOOL_SPECS and self._usable(n, agent)]
        if state.flow is not None and (step := state.flow.transition_tool()) is not None:
            specs.append(step)
        return specs

    async def aclose(self) -> None:
        """Close the HTTP and Twilio clients."""
        await self.http.aclose()
        if self.twilio is not None:
            await self.twilio.aclose()

    def configured(self) -> set[str]:
        """The tools this deployment can run for an agent without settings of its own."""
        http = set(self.http.available(HTTP_TOOLS))
        transfer = {"transfer_to_agent"} if self.transfer_number and self.twilio else set()
        search = {"search_knowledge_base"} if self.lookup is not None else set()
        return http | transfer | search | {"end_call"}

    def _usable(self, name: str, agent: AgentProfile) -> bool:
        if name in HTTP_TOOLS:
            return self.http.base_url(name, agent.tool_urls) is not None
        if name == "search_knowledge_base":
            return self.lookup is not None and agent.knowledge_base_id is not None
        if name == "transfer_to_agent":
            return (agent.transfer_number or self.transfer_number) is not None
        return name == "end_call"

    async def run(
        self, call: ToolCall, ctx: ToolContext, state: ConversationState, result: TurnResult
    ) -> ToolOutcome:
        """Run one call; failures come back as outcomes, never as exceptions."""
        started = time.monotonic()
        try:
            if call.name in HTTP_TOOLS:
                return await self.http.run(call, ctx)
            if call.name == "search_knowledge_base":
                return await self._search(call, state, result, started)
            if call.name == "transfer_to_agent":
                return await self._transfer(call, ctx, state, started)
            if call.name == "end_call":
                return tool_outcome(call, started, ok=True, result={"ending": True})
            if call.name == TRANSITION_TOOL:
                return tool_outcome(
                    call, started, ok=False, result={"error": "this agent has no flow"}
                )
            return tool_outcome(
                call, started, ok=False, result={"error": f"there is no tool {call.name!r}"}
            )
        except Exception as exc:  # a broken tool must not break the turn
            logger.exception("tool %s failed", call.name)
            return tool_outcome(
                call,
                started,
                ok=False,
                result={"error": "the tool failed"},
                spoken="Sorry, I couldn't do that just now.",
                error=repr(exc),
            )

    async def _search(
        self, call: ToolCall, state: ConversationState, result: TurnResult, started: float
    ) -> ToolOutcome:
        query = str(call.arguments.get("query") or "").strip()
        if self.lookup is None or not query:
            return tool_outcome(call, started, ok=False, result={"error": "a query is needed"})
        found = await self.lookup(state.agent, query)
        known = {s.chunk_id for s in result.sources}
        result.sources.extend(s for s in found if s.chunk_id not in known)
        passages = [
            {"document": s.document_name, "heading": s.heading, "text": s.text} for s in found
        ]
        return tool_outcome(call, started, ok=True, result={"passages": passages})

    async def _transfer(
        self, call: ToolCall, ctx: ToolContext, state: ConversationState, started: float
    ) -> ToolOutcome:
        number = state.agent.transfer_number or self.transfer_number
        reason = str(call.arguments.get("reason") or "the caller asked for a person")
        transcript = [
            {"role": m.role, "text": m.content}
            for m in state.history
            if m.role in ("user", "assistant") and m.content
        ]
        summary = _summary(transcript, reason)
        notice = await self.http.notify_handoff(
            ctx, reason=reason, summary=summary, transcript=transcript
        )
        if not notice.ok:
            logger.warning("handoff notice failed: %s", notice.error)
        if state.channel == "playground" or not ctx.call_sid:
            return tool_outcome(
                call,
                started,
                ok=True,
                result={"transferred": False, "simulated": True, "to": number, "summary": summary},
            )
        if self.twilio is None or number is None:
            return tool_outcome(
                call,
                started,
                ok=False,
                result={"error": "transfers are not set up"},
                spoken="I'm sorry, I can't transfer you right now.",
            )
        try:
            await self.twilio.transfer(
                ctx.call_sid, to_number=number, announcement=TRANSFER_ANNOUNCEMENT
            )
        except TwilioUnavailable as exc:
            return tool_outcome(
                call,
                started,
                ok=False,
                result={"error": "the transfer did not go through"},
                spoken="I'm sorry, I couldn't transfer you just now.",
                error=str(exc),
            )
        return tool_outcome(call, started, ok=True, result={"transferred": True, "to": number})


def _summary(transcript: list[dict[str, str]], reason: str) -> str:
    """A plain summary for the person taking over: why, and the caller's last words."""
    said = [t["text"] for t in transcript if t["role"] == "user"][-3:]
    return f"Transfer requested: {reason}. Caller said: " + " / ".join(said) if said else reason


def tool_outcome(
    call: ToolCall,
    started: float,
    *,
    ok: bool,
    result: dict[str, Any],
    spoken: str | None = None,
    error: str | None = None,
) -> ToolOutcome:
    """The outcome of `call`, begun at `started` (monotonic seconds)."""
    return ToolOutcome(
        name=call.name,
        arguments=dict(call.arguments),
        ok=ok,
        result=result,
        spoken_fallback=spoken,
        latency_s=time.monotonic() - started,
        error=error if error is not None else (None if ok else str(result.get("error"))),
    )
