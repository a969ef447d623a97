"""Gemini Flash and Pro chat through the official `google-genai` SDK, when GEMINI_API_KEY is set."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from typing import Any

import httpx
from google import genai
from google.genai import types

from app.llm.base import (
    LLMEvent,
    Message,
    TextDelta,
    Tier,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)

_MODES = {
    "required": types.FunctionCallingConfigMode.ANY,
    # The model answers in words, as if there were no tools, while the declarations keep a
    # history with function calls in it consistent.
    "none": types.FunctionCallingConfigMode.NONE,
}

logger = logging.getLogger(__name__)

# Pro cannot think less than 128 tokens; a small cap keeps a phone turn's latency bounded.
# Source: ai.google.dev/gemini-api/docs/thinking (budget ranges per model)
PRO_THINKING_BUDGET = 512
SIGNATURES_KEPT = 4096  # thought signatures of recent function calls, to send back

# The HTTP responses opened by the stream being started in this context (see `_opened`).
_opened_here: ContextVar[list[httpx.Response] | None] = ContextVar("gemini_opened", default=None)


async def _opened(response: httpx.Response) -> None:
    """httpx response hook: hand the response to the stream whose request opened it.

    The SDK's streamed response sits in a reference cycle (its HttpResponse holds its own
    segment generator), so closing the SDK's iterator leaves the connection open, and Gemini
    generating, until the garbage collector runs. Each stream closes its responses itself.
    """
    opened = _opened_here.get()
    if opened is not None:
        opened.append(response)


class GeminiLLM:
    """Streams chat replies from Gemini: FLASH (and SLM) tiers on Flash, PRO on Pro.

    No retries here: the router above falls back to another engine on any error, which is faster
    on a live call than waiting out a backoff.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        flash_model: str = "gemini-2.5-flash",
        pro_model: str = "gemini-2.5-pro",
        timeout_s: float = 10.0,
        max_output_tokens: int = 256,
    ) -> None:
        """Configure the engine; `timeout_s` bounds connecting and each wait for data."""
        if not api_key:
            raise ValueError("GeminiLLM needs an API key: set GEMINI_API_KEY")
        self._api_key = api_key
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.flash_model = flash_model
        self.pro_model = pro_model
        self.max_output_tokens = max_output_tokens
        self.name = "gemini"
        # httpx connections belong to the event loop that opened them: one client per loop.
        self._clients: dict[asyncio.AbstractEventLoop, tuple[genai.Client, httpx.AsyncClient]] = {}
        # Thinking models sign their function calls, and Gemini 3 rejects a follow-up whose
        # calls lost their signature; ToolCall has no field for it, so it is kept here by id.
        # Source: ai.google.dev/gemini-api/docs/thought-signatures
        self._signatures: OrderedDict[str, bytes] = OrderedDict()

    def model_for(self, tier: Tier) -> str:
        """The model a tier runs on."""
        return self.pro_model if tier == Tier.PRO else self.flash_model

    async def stream(
        self,
        messages: list[Message],
        tools: list[ToolSpec] | None = None,
        tier: Tier = Tier.FLASH,
        tool_choice: ToolChoice = "auto",
        shown: list[ToolSpec] | None = None,  # the model's own context caching needs none
    ) -> AsyncGenerator[LLMEvent, None]:
        """Yield TextDelta pieces and ToolCalls as they arrive, then one Usage.

        Raises the SDK's `google.genai.errors.APIError` (ClientError for 4xx, ServerError for
        5xx) as it is, TimeoutError when Gemini is silent for `timeout_s`, and RuntimeError when
        it answers with nothing (a blocked prompt or reply). Closing the iteration closes the
        HTTP stream, which stops generation.
        """
        model = self.model_for(tier)
        system, contents = self._contents(messages)
        config = self._config(tier, system, tools, tool_choice)
        opened: list[httpx.Response] = []
        # Set where the request is sent: the router may await the first event in its own task.
        token = _opened_here.set(opened)
        try:
            async for event in self._events(model, contents, config):
                yield event
        except httpx.TimeoutException as exc:
            raise TimeoutError(f"Gemini ({model}) sent nothing for {self.timeout_s}s") from exc
        finally:
            for response in opened:
                await response.aclose()
            with contextlib.suppress(ValueError):  # closed from another task than it began in
                _opened_here.reset(token)

    async def _events(
        self, model: str, contents: list[types.Content], config: types.GenerateContentConfig
    ) -> AsyncGenerator[LLMEvent, None]:
        client = await self._client()
        response = await client.aio.models.generate_content_stream(
            model=model, contents=contents, config=config
        )
        usage: types.GenerateContentResponseUsageMetadata | None = None
        finish: types.FinishReason | None = None
        blocked: str | None = None
        produced = False
        calls = 0
        try:
            async for chunk in response:
                usage = chunk.usage_metadata or usage
                feedback = chunk.prompt_feedback
                if feedback is not None and feedback.block_reason is not None:
                    blocked = " ".join(
                        filter(None, [feedback.block_reason.value, feedback.block_reason_message])
                    )
                if not chunk.candidates:
                    continue
                candidate = chunk.candidates[0]
                finish = candidate.finish_reason or finish
                parts = candidate.content.parts if candidate.content else None
                for part in parts or []:
                    if part.thought:
                        continue
                    if part.function_call is not None:
                        call = part.function_call
                        call_id = call.id or f"call_{calls}"
                        calls += 1
                        if call.id and part.thought_signature:
                            self._remember(call.id, part.thought_signature)
                        produced = True
                        yield ToolCall(call.name or "", dict(call.args or {}), call_id)
                    elif part.text:
                        produced = True
                        yield TextDelta(part.text)
        finally:
            # Unwinds the SDK's generators; `stream` closes the HTTP response itself.
            aclose = getattr(response, "aclose", None)
            if aclose is not None:
                await aclose()
        if not produced:
            ended = finish.value if finish else "none"
            reason = f"prompt blocked: {blocked}" if blocked else f"finish reason {ended}"
            raise RuntimeError(f"Gemini ({model}) returned no reply ({reason})")
        if finish not in (None, types.FinishReason.STOP):
            logger.warning("Gemini (%s) reply cut short: finish reason %s", model, finish.value)
        yield _usage(model, usage)

    async def aclose(self) -> None:
        """Close this event loop's HTTP connections."""
        client, http = self._clients.pop(asyncio.get_running_loop(), (None, None))
        if client is not None and http is not None:
            await client.aio.aclose()
            client.close()
            await http.aclose()

    async def prewarm(self, system_prompt: str | None = None) -> None:
        """Build this event loop's client now rather than on the first turn (Gemini caches
        prompts on its side: `system_prompt` is not needed)."""
        await self._client()

    async def prefill(self, messages: list[Message], shown: list[ToolSpec] | None = None) -> None:
        """Nothing: Gemini caches repeated prompt prefixes on its side."""

    async def _client(self) -> genai.Client:
        loop = asyncio.get_running_loop()
        for stale in [other for other in self._clients if other.is_closed()]:
            del self._clients[stale]  # its connections ended with its loop
        if loop not in self._clients:
            # ~50 ms of SSL-context loading: kept off the loop that carries live audio.
            built = await asyncio.to_thread(self._build_client)
            self._clients.setdefault(loop, built)
        return self._clients[loop][0]

    def _build_client(self) -> tuple[genai.Client, httpx.AsyncClient]:
        http = httpx.AsyncClient(event_hooks={"response": [_opened]})
        options = types.HttpOptions(
            base_url=self.base_url, timeout=int(self.timeout_s * 1000), httpx_async_client=http
        )
        return genai.Client(api_key=self._api_key, http_options=options), http

    def _config(
        self,
        tier: Tier,
        system: str | None,
        tools: list[ToolSpec] | None,
        tool_choice: ToolChoice = "auto",
    ) -> types.GenerateContentConfig:
        if tier == Tier.PRO:
            thinking = types.ThinkingConfig(thinking_budget=PRO_THINKING_BUDGET)
            # On thinking models maxOutputTokens counts the thoughts too; without the headroom
            # a thoughtful turn ends in MAX_TOKENS with no text.
            # Source: github.com/googleapis/python-genai/issues/782 and /issues/811
            max_tokens = self.max_output_tokens + PRO_THINKING_BUDGET
        else:
            # Flash answers without thinking: first-token latency matters on a phone call.
            thinking = types.ThinkingConfig(thinking_budget=0)
            max_tokens = self.max_output_tokens
        declarations = [
            types.FunctionDeclaration(
                name=spec.name,
                description=spec.description,
                parameters_json_schema=spec.parameters or None,
            )
            for spec in tools or []
        ]
        return types.GenerateContentConfig(
            system_instruction=system,
            max_output_tokens=max_tokens,
            thinking_config=thinking,
            tools=[types.Tool(function_declarations=declarations)] if declarations else None,
            tool_config=(
                types.ToolConfig(
                    function_calling_config=types.FunctionCallingConfig(mode=_MODES[tool_choice])
                )
                if declarations and tool_choice != "auto"
                else None
            ),
            # The router runs the tools; the SDK must hand function calls back, not run them.
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            # A resumed hop would exceed the turn's time budget; fail and let the router fall back.
            automatic_continuation=False,
        )

    def _contents(self, messages: list[Message]) -> tuple[str | None, list[types.Content]]:
        """System text, and the turns in Gemini's roles: user, model, and function results."""
        system: list[str] = []
        contents: list[types.Content] = []
        names: dict[str, str] = {}  # call id -> tool name, for results that lack a name
        for message in messages:
            if message.role == "system":
                if message.content:
                    system.append(message.content)
            elif message.role == "assistant":
                parts: list[types.Part] = []
                if message.content:
                    parts.append(types.Part(text=message.content))
                for call in message.tool_calls:
                    names[call.id] = call.name
                    function_call = types.FunctionCall(
                        name=call.name, args=call.arguments, id=call.id or None
                    )
                    parts.append(
                        types.Part(
                            function_call=function_call,
                            thought_signature=self._signatures.get(call.id),
                        )
                    )
                if parts:
                    contents.append(types.Content(role="model", parts=parts))
            elif message.role == "tool":
                part = types.Part(function_response=_function_response(message, names))
                previous = contents[-1] if contents else None
                if (
                    previous is not None
                    and previous.role == "user"
                    and previous.parts
                    and all(p.function_response is not None for p in previous.parts)
                ):
                    previous.parts.append(part)  # results of one turn's calls go together
                else:
                    contents.append(types.Content(role="user", parts=[part]))
            elif message.content:
                contents.append(
                    types.Content(role="user", parts=[types.Part(text=message.content)])
                )
        return "\n\n".join(system) or None, contents

    def _remember(self, call_id: str, signature: bytes) -> None:
        self._signatures[call_id] = signature
        self._signatures.move_to_end(call_id)
        while len(self._signatures) > SIGNATURES_KEPT:
            self._signatures.popitem(last=False)


def _function_response(message: Message, names: dict[str, str]) -> types.FunctionResponse:
    name = message.name or names.get(message.tool_call_id or "")
    if not name:
        raise ValueError(
            "A tool message needs the tool's `name` (or a `tool_call_id` of an earlier call)"
        )
    try:
        result: Any = json.loads(message.content)
    except ValueError:
        result = message.content
    response = result if isinstance(result, dict) else {"result": result}
    return types.FunctionResponse(name=name, id=message.tool_call_id or None, response=response)


def _usage(model: str, usage: types.GenerateContentResponseUsageMetadata | None) -> Usage:
    if usage is None:
        return Usage(model, 0, 0, 0)
    # Thinking tokens are billed as output. Source: ai.google.dev/gemini-api/docs/thinking
    completion = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    return Usage(
        model=model,
        prompt_tokens=usage.prompt_token_count or 0,
        completion_tokens=completion,
        cached_tokens=usage.cached_content_token_count or 0,
    )
