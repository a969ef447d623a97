"""The streaming language-model interface and the messages that cross it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant", "tool"]
# "required": the reply must be a call of one of the tools given (no text); "none": words only,
# though the tools stay declared (a history with calls in it stays valid for Gemini).
ToolChoice = Literal["auto", "required", "none"]


class Tier(StrEnum):
    """How capable (and costly) a model a turn needs."""

    SLM = "slm"
    FLASH = "flash"
    PRO = "pro"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for a tool to run."""

    name: str
    arguments: dict[str, Any]
    id: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message.

    An assistant message may carry the tool calls the model made (its `content` is then often
    empty); a `tool` message carries one call's result as JSON text, with the call's `name` and
    `tool_call_id`.
    """

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    name: str | None = None
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply text, in order."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one generation, reported once at the end of a stream."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Confidence:
    """How sure the model was of its first tokens: the mean probability it gave the tokens it
    chose (0–1). Engines that can measure it report it once, early in the stream; the router
    escalates an unsure small model to a bigger one."""

    score: float
    tokens: int


@dataclass(frozen=True, slots=True)
class Routed:
    """Which tier and engine serve the stream from here on, and why (sent by the router first,
    and again on every fallback or escalation)."""

    tier: Tier
    engine: str
    reason: str


LLMEvent = TextDelta | ToolCall | Usage | Confidence | Routed


@runtime_checkable
class LanguageModel(Protocol):
    """Streams a reply to a conversation."""

    name: str

    def stream(
        self,
        messages: list[Message],
        tools: list[ToolSpec] | None = None,
        tier: Tier = Tier.SLM,
        tool_choice: ToolChoice = "auto",
        shown: list[ToolSpec] | None = None,
    ) -> AsyncIterator[LLMEvent]:
        """Yield the reply as it is generated; cancelling the iteration stops generation.

        `tools` may be called (unless `tool_choice` is "none"); `shown`, when given, are the
        tools the prompt declares instead, a superset: a local model keeps its cached prompt
        prefix when the declared tools stay the same turn after turn while the callable ones
        change. A cloud model may ignore it."""
        ...

    async def prewarm(self, system_prompt: str | None = None) -> None:
        """Load the model (and cache `system_prompt`'s prefix, where it can) before the first
        turn, so no caller pays for it."""
        ...

    async def prefill(self, messages: list[Message], shown: list[ToolSpec] | None = None) -> None:
        """Read a conversation's prompt so far (declaring `shown`) ahead of its next turn, so
        that turn reads only its new words; nothing where the model keeps no prompt cache of
        its own. A reply that is waiting goes first."""
        ...

    async def aclose(self) -> None:
        """Release threads, connections and models once the work in flight is done."""
        ...


@dataclass(frozen=True, slots=True)
class CollectedReply:
    """A whole streamed reply, with its time to first token."""

    text: str
    usage: Usage | None
    first_token_s: float | None
    total_s: float


async def collect_reply(
    llm: LanguageModel, messages: list[Message], tier: Tier = Tier.SLM
) -> CollectedReply:
    """Run a stream to the end (for tests, benchmarks and non-streaming callers)."""
    import time

    started = time.perf_counter()
    first: float | None = None
    text = ""
    usage: Usage | None = None
    async for event in llm.stream(messages, None, tier):
        if isinstance(event, TextDelta):
            first = first if first is not None else time.perf_counter() - started
            text += event.text
        elif isinstance(event, Usage):
            usage = event
    return CollectedReply(text, usage, first, time.perf_counter() - started)
