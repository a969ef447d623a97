"""The tools an agent can be given, and the `ToolBox` that offers and runs them on a replica.

Adding a tool: write its module (a `Tool` subclass), import it here and add it to `TOOLS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import httpx

from app.conversation.flows import TRANSITION_TOOL
from app.llm.base import ToolCall, ToolSpec
from app.settings import Settings
from app.tools.appointment import Appointment
from app.tools.arguments import ToolArgumentError
from app.tools.base import Tool, ToolContext, ToolDeps, ToolOutcome, tool_outcome
from app.tools.customer_profile import CustomerProfile
from app.tools.end_call import EndCall
from app.tools.http import HttpTool, ToolHttp
from app.tools.item_stock import ItemStock
from app.tools.knowledge_search import KnowledgeSearch
from app.tools.order_status import OrderStatus
from app.tools.transfer import Transfer

if TYPE_CHECKING:
    from app.conversation.engine import ConversationState, TurnResult
    from app.conversation.grounding import KnowledgeLookup
    from app.telephony.calls_api import TwilioCalls

logger = logging.getLogger(__name__)

# In the order the API lists them.
TOOLS: tuple[type[Tool], ...] = (
    OrderStatus,
    ItemStock,
    Appointment,
    CustomerProfile,
    Transfer,
    KnowledgeSearch,
    EndCall,
)
TOOL_NAMES: tuple[str, ...] = tuple(tool.name for tool in TOOLS)
# The tools an agent may give a base URL of its own.
HTTP_TOOL_NAMES: tuple[str, ...] = tuple(t.name for t in TOOLS if issubclass(t, HttpTool))
_BY_NAME: dict[str, type[Tool]] = {tool.name: tool for tool in TOOLS}

if TYPE_CHECKING:
    ToolName = str
else:  # a Literal built from the list, so the API's enum of tool names is the registry's
    ToolName = Literal[TOOL_NAMES]

_UNKNOWN_TOOL = "Sorry, I can't do that on this call."


def tool_class(name: str) -> type[Tool] | None:
    """The tool called `name`, if there is one (the flow's `go_to_step` is not a tool)."""
    return _BY_NAME.get(name)


def validate_arguments(name: str, arguments: Any) -> dict[str, Any]:
    """The model's arguments for tool `name`, normalised and checked against its schema.

    Raises `ToolArgumentError` naming each problem, e.g. "missing date".
    """
    tool = tool_class(name)
    if tool is None:
        raise ToolArgumentError(f"there is no tool named {name!r}")
    return tool.check(arguments)


class ToolBox:
    """The registry's tools bound to this replica's clients: which ones an agent is offered at
    a step, and running a call. A tool that cannot work here is not offered at all."""

    def __init__(
        self,
        settings: Settings,
        *,
        twilio: TwilioCalls | None = None,
        lookup: KnowledgeLookup | None = None,
        transfer_number: str | None = None,
        demo_org_id: str | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        # The deployment's tool URLs serve the demo organization and VELOX_TOOL_URL_ORGS only;
        # `client`, `clock` and `sleep` are the HTTP tools' (see ToolHttp).
        self.http = ToolHttp(
            settings,
            operator_orgs=[demo_org_id] if demo_org_id else [],
            client=client,
            clock=clock,
            sleep=sleep,
        )
        self.twilio = twilio
        deps = ToolDeps(
            settings=settings,
            http=self.http,
            twilio=twilio,
            lookup=lookup,
            transfer_number=transfer_number,
        )
        self.tools: dict[str, Tool] = {tool.name: tool(deps) for tool in TOOLS}

    def specs(self, state: ConversationState) -> list[ToolSpec]:
        """The tools the model may call now: the agent's (the flow step's, in a flow) that can
        work here, plus the flow's `go_to_step`."""
        agent = state.agent
        names = list(agent.tools)
        if state.flow is not None:
            names = state.flow.allowed_tools(names)
        specs = [tool.spec() for n in names if (tool := self.tools.get(n)) and tool.usable(agent)]
        if state.flow is not None and (step := state.flow.transition_tool()) is not None:
            specs.append(step)
        return specs

    def configured(self) -> set[str]:
        """The tools this deployment can run for an agent without settings of its own."""
        return {name for name, tool in self.tools.items() if tool.configured()}

    async def run(
        self, call: ToolCall, ctx: ToolContext, state: ConversationState, result: TurnResult
    ) -> ToolOutcome:
        """Run one call; failures come back as outcomes, never as exceptions."""
        started = time.monotonic()
        try:
            tool = self.tools.get(call.name)
            if tool is not None:
                return await tool.run(call, ctx, state, result)
            if call.name == TRANSITION_TOOL:
                return tool_outcome(
                    call, started, ok=False, result={"error": "this agent has no flow"}
                )
            return tool_outcome(
                call,
                started,
                ok=False,
                result={"error": f"there is no tool {call.name!r}"},
                spoken=_UNKNOWN_TOOL,
            )
        except Exception:  # a broken tool must not break the turn; the log has the exception
            logger.exception("tool %s failed, call %s org %s", call.name, ctx.call_sid, ctx.org_id)
            return tool_outcome(
                call,
                started,
                ok=False,
                result={"error": "the tool failed"},
                spoken="Sorry, I couldn't do that just now.",
            )

    async def aclose(self) -> None:
        """Close the HTTP and Twilio clients."""
        await self.http.aclose()
        if self.twilio is not None:
            await self.twilio.aclose()

    async def __aenter__(self) -> ToolBox:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
