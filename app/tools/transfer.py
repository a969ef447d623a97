"""`transfer_to_agent`: the live call moves to a person through Twilio's REST API, and the
handoff notice tells the team taking it who is coming and why."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from app.llm.base import ToolCall
from app.telephony.calls_api import TwilioUnavailable
from app.tools.arguments import ToolArguments
from app.tools.base import Intent, Tool, ToolContext, ToolDeps, ToolOutcome, tool_outcome
from app.tools.contract import Contract, text
from app.tools.http import Backend, Exchange, Request, Voice

if TYPE_CHECKING:
    from app.conversation.agent import AgentProfile
    from app.conversation.engine import ConversationState, TurnResult

logger = logging.getLogger(__name__)

HANDOFF = "handoff"  # the handoff notice's name in logs, and its key in an agent's tool URLs
HANDED_OFF = Contract(handoff_id=text(80))
TRANSFER_ANNOUNCEMENT = "Please hold while I connect you."


class TransferArguments(ToolArguments):
    """Why, and to which team."""

    reason: str = Field(description="why, in a few words", min_length=1, max_length=200)
    department: Literal["sales", "support", "billing"] | None = Field(
        default=None, description="which team, if clear"
    )


class HandoffNotice:
    """POST /handoffs on HANDOFF_API_URL: the reason, a summary and the transcript so far."""

    voice = Voice(
        "the handoff service",
        "I couldn't pass your details to the team, so you may need to repeat them.",
        "I couldn't pass your details to the team, so you may need to repeat them.",
        "I couldn't pass your details to the team, so you may need to repeat them.",
    )

    def __init__(self, deps: ToolDeps) -> None:
        self.deps = deps

    def backend(self) -> Backend:
        settings = self.deps.settings
        return Backend(
            "HANDOFF_API_URL", settings.tools.handoff_api_url, settings.tools.handoff_api_key
        )

    def base_url(
        self, overrides: Mapping[str, str] = MappingProxyType({}), org_id: str | None = None
    ) -> str | None:
        """The base URL the notice goes to for `org_id`: the agent's override, else the
        settings' (when they serve that org)."""
        endpoint = self.deps.http.endpoint(self.backend(), overrides.get(HANDOFF), org_id)
        return endpoint.url if endpoint else None

    async def send(
        self,
        ctx: ToolContext,
        *,
        reason: str,
        summary: str,
        transcript: list[dict[str, str]],
    ) -> ToolOutcome:
        """Tell the team taking the call who is coming and why."""
        started = self.deps.http.clock()
        args = {"reason": reason, "summary": summary}
        body = {
            "conversation_id": ctx.conversation_id,
            "call_sid": ctx.call_sid,
            "caller": ctx.caller_number,
            "reason": reason,
            "summary": summary,
            "transcript": [
                {"role": str(t.get("role", "")), "text": str(t.get("text", ""))} for t in transcript
            ],
        }
        # The transcript grows while the call goes on, so only the gist (`args`) names the
        # request in its idempotency key.
        exchange = Exchange(HANDOFF, self.backend(), self.voice, _notified, needs_body=False)
        return await self.deps.http.exchange(
            exchange, args, Request("POST", ("handoffs",), body=body), ctx, started
        )


def _notified(
    status: int, args: dict[str, Any], body: dict[str, Any] | None
) -> dict[str, Any] | None:
    return {"notified": True, **HANDED_OFF.pick(body or {})} if 200 <= status < 300 else None


class Transfer(Tool):
    """Dials the agent's transfer number (else the deployment's) after the handoff notice; in
    the playground, or without a live call, the transfer is only simulated."""

    name = "transfer_to_agent"
    description = (
        "Transfer the call to a person. Use when the caller asks for a human, is upset, "
        "or needs something you cannot do. Say you are transferring them first."
    )
    arguments = TransferArguments
    acts = True
    intent = Intent(
        "human",
        re.compile(
            r"\b(human|person|someone|somebody|agent|representative|rep|operator|manager|"
            r"supervisor|transfer|real person|speak to|talk to|speak with|talk with|in charge|"
            r"customer service)\b"
        ),
        lasting=False,
    )
    # What the caller hears when the call cannot move: no transfer set up, or Twilio refused.
    not_set_up: ClassVar[str] = "I'm sorry, I can't transfer you right now."
    refused: ClassVar[str] = "I'm sorry, I couldn't transfer you just now."

    def __init__(self, deps: ToolDeps) -> None:
        super().__init__(deps)
        self.notice = HandoffNotice(deps)

    def configured(self) -> bool:
        return bool(self.deps.transfer_number and self.deps.twilio)

    def usable(self, agent: AgentProfile) -> bool:
        # A handoff system alone is enough to hand off: the playground tells it (a transfer is
        # only simulated there), and a call without a number to dial still gets the team told.
        if (agent.transfer_number or self.deps.transfer_number) is not None:
            return True
        return self.notice.base_url(agent.tool_urls, agent.org_id) is not None

    async def run(
        self, call: ToolCall, ctx: ToolContext, state: ConversationState, result: TurnResult
    ) -> ToolOutcome:
        started = time.monotonic()
        number = state.agent.transfer_number or self.deps.transfer_number
        reason = str(call.arguments.get("reason") or "the caller asked for a person")
        transcript = [
            {"role": m.role, "text": m.content}
            for m in state.history
            if m.role in ("user", "assistant") and m.content
        ]
        summary = _summary(transcript, reason)
        notice = await self.notice.send(ctx, reason=reason, summary=summary, transcript=transcript)
        if not notice.ok:
            logger.warning("handoff notice failed: %s", notice.error)
        if state.channel == "playground" or not ctx.call_sid:
            return tool_outcome(
                call,
                started,
                ok=True,
                result={"transferred": False, "simulated": True, "to": number, "summary": summary},
            )
        twilio = self.deps.twilio
        if twilio is None or number is None:
            return tool_outcome(
                call,
                started,
                ok=False,
                result={"error": "transfers are not set up"},
                spoken=self.not_set_up,
            )
        try:
            await twilio.transfer(
                ctx.call_sid, to_number=number, announcement=TRANSFER_ANNOUNCEMENT
            )
        except TwilioUnavailable as exc:
            # Twilio's words name our account's calls: the log has them, the tenant does not.
            logger.warning("transfer of call %s org %s failed: %s", ctx.call_sid, ctx.org_id, exc)
            return tool_outcome(
                call,
                started,
                ok=False,
                result={"error": "the transfer did not go through"},
                spoken=self.refused,
            )
        return tool_outcome(call, started, ok=True, result={"transferred": True, "to": number})


def _summary(transcript: list[dict[str, str]], reason: str) -> str:
    """A plain summary for the person taking over: why, and the caller's last words."""
    said = [t["text"] for t in transcript if t["role"] == "user"][-3:]
    return f"Transfer requested: {reason}. Caller said: " + " / ".join(said) if said else reason
