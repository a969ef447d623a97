"""`end_call`: the agent hangs up; the call session does, once the goodbye has been heard."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from pydantic import Field

from app.llm.base import ToolCall
from app.tools.arguments import ToolArguments
from app.tools.base import Intent, Tool, ToolContext, ToolOutcome, tool_outcome

if TYPE_CHECKING:
    from app.conversation.engine import ConversationState, TurnResult


class EndArguments(ToolArguments):
    """Why, if the model says."""

    reason: str | None = Field(
        default=None, description="why the call ends, in a few words", min_length=1, max_length=200
    )


class EndCall(Tool):
    """Only reports back: the engine turns a successful run into its EndCall event."""

    name = "end_call"
    description = (
        "Hang up. Use only after the caller said goodbye or has nothing more to ask, and "
        "you have said goodbye too."
    )
    arguments = EndArguments
    acts = True
    intent = Intent(
        "goodbye",
        re.compile(
            r"\b(bye|goodbye|good bye|that'?s all|that is all|nothing else|hang up|have a good|"
            r"have a nice|take care|all set)\b"
        ),
        lasting=False,
    )

    async def run(
        self, call: ToolCall, ctx: ToolContext, state: ConversationState, result: TurnResult
    ) -> ToolOutcome:
        return tool_outcome(call, time.monotonic(), ok=True, result={"ending": True})
