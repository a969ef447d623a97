"""The base class of every tool, what it is given, and what a run returns.

A tool never raises for a problem it can foresee (a backend down, an argument missing): it
returns a `ToolOutcome` whose `result` is what the model reads next and whose `spoken_fallback`
is a sentence the caller can hear.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

from app.llm.base import ToolCall, ToolSpec
from app.settings import Settings
from app.tools.arguments import ToolArguments

if TYPE_CHECKING:
    from app.conversation.agent import AgentProfile
    from app.conversation.engine import ConversationState, TurnResult
    from app.conversation.grounding import KnowledgeLookup
    from app.conversation.routing import TurnFeatures
    from app.telephony.calls_api import TwilioCalls
    from app.tools.http import ToolHttp

    # What the caller said that an argument must be one of (routing's features of the turn).
    Heard = Callable[[TurnFeatures], Sequence[str]]


@dataclass(frozen=True, slots=True)
class ToolContext:
    """The call a tool runs for."""

    org_id: str | None
    agent_id: str
    conversation_id: str | None
    call_sid: str | None
    caller_number: str | None
    # tool name (or "handoff") -> base URL from the agent's settings
    url_overrides: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What one tool run produced, for the model (`result`), the caller and the records."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    result: dict[str, Any]
    spoken_fallback: str | None
    latency_s: float
    error: str | None = None
    # What the agent must ask the caller before the tool can finish (a booking's name): said
    # as written, and it ends the turn.
    asks: str | None = None
    # The result in the tool's own words ("Order A1042 has shipped with UPS..."): the local
    # model, given the result, only reads it back (slowly, and adding facts of its own).
    told: str | None = None

    @property
    def closing_words(self) -> str | None:
        """The tool's own words that end the turn: its fallback when it failed, else what it
        still asks for."""
        return self.asks if self.ok else self.spoken_fallback

    def record(self) -> dict[str, Any]:
        """What the conversation record keeps of the run."""
        return {
            "name": self.name,
            "arguments": self.arguments,
            "ok": self.ok,
            "result": self.result,
            "latency_s": round(self.latency_s, 3),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Intent:
    """Something a caller wants done, recognised by the words that ask for it (lower case)."""

    name: str
    pattern: re.Pattern[str]
    # Whether it carries over a few turns ("where's my order?" ... "it's A1001"); asking for a
    # person or saying goodbye counts only in the turn that says it.
    lasting: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDeps:
    """What the tools of a replica share: the settings and the clients they call through."""

    settings: Settings
    http: ToolHttp
    twilio: TwilioCalls | None = None
    lookup: KnowledgeLookup | None = None
    transfer_number: str | None = None  # the deployment's; an agent may name its own


class Tool(ABC):
    """One tool an agent may be given.

    The class declares the tool; an instance, made with the replica's `ToolDeps`, runs it.
    """

    name: ClassVar[str]
    description: ClassVar[str]  # written for a small model: when to use it, in a few sentences
    arguments: ClassVar[type[ToolArguments]]
    # The small model is offered the tool only on a turn where the caller asked for this (a
    # 0.5B model offered a tool tends to call it, inventing the arguments); None: every turn.
    intent: ClassVar[Intent | None] = None
    # Arguments the small model may only fill with what the caller said; the tool is not
    # offered to it until the caller has said one of each.
    grounding: ClassVar[Mapping[str, Heard]] = MappingProxyType({})
    # Not offered to the small model next to a tool the caller asked for by its intent.
    yields_to_intents: ClassVar[bool] = False
    # It changes something beyond the conversation (books, hands off, hangs up): on a call it
    # runs only once the caller has finished the turn, never for a reply prepared on a guess.
    acts: ClassVar[bool] = False

    def __init__(self, deps: ToolDeps) -> None:
        self.deps = deps

    @classmethod
    def spec(cls) -> ToolSpec:
        """What the models are told about the tool."""
        return _spec(cls)

    @classmethod
    def check(cls, arguments: Any) -> dict[str, Any]:
        """The model's arguments, normalised and checked (see `ToolArguments.check`)."""
        return cls.arguments.check(arguments)

    def configured(self) -> bool:
        """Whether the deployment can run the tool for an agent without settings of its own."""
        return True

    def usable(self, agent: AgentProfile) -> bool:
        """Whether the tool can work for `agent` here: if not, it is not offered at all."""
        return True

    @abstractmethod
    async def run(
        self, call: ToolCall, ctx: ToolContext, state: ConversationState, result: TurnResult
    ) -> ToolOutcome:
        """Run one call of the tool in a turn of `state`'s conversation."""


@cache
def _spec(tool: type[Tool]) -> ToolSpec:
    return ToolSpec(tool.name, tool.description, tool.arguments.parameters())


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
