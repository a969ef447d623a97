"""What the tools that call a business system over HTTP share: one client, retries within the
tool's time budget, idempotency keys, and reading status codes the same way for every tool.

The HTTP contracts are in the README, "Tool HTTP contracts"; `velox demo-backend` implements them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from app.llm.base import ToolCall
from app.settings import Settings
from app.tools.arguments import ToolArgumentError
from app.tools.base import Tool, ToolContext, ToolOutcome

if TYPE_CHECKING:
    from app.conversation.agent import AgentProfile
    from app.conversation.engine import ConversationState, TurnResult

logger = logging.getLogger(__name__)

_NONE: Mapping[str, str] = MappingProxyType({})

# Retried only when the answer says "try again": rate limited, or a gateway or server hiccup.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

# Maps (status, arguments, JSON body) to the model's result, or None for a failure. A 404 or a
# taken slot is an answer, not a failure: the tool worked and the model can say so.
ResultReader = Callable[[int, dict[str, Any], dict[str, Any] | None], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Voice:
    """How an HTTP tool's failures are put: to the model (`system`) and to the caller."""

    system: str  # how errors name the backend, e.g. "the order system"
    unreachable: str
    rejected: str
    invalid: str


@dataclass(frozen=True, slots=True)
class Backend:
    """Where the deployment's settings put a business system."""

    url_setting: str  # the variable that sets `url`, named when it is unset: "ORDER_API_URL"
    url: str | None
    key: SecretStr | None

    def endpoint(self, override: str | None) -> tuple[str, str | None] | None:
        """The base URL to call (the agent's `override`, else the settings') and its key."""
        url = override or self.url
        if not url:
            return None
        url = url.rstrip("/")
        # The key belongs to the URL in the settings: an agent's own URL never receives it.
        same = self.url is not None and url == self.url.rstrip("/")
        return url, (self.key.get_secret_value() if self.key and same else None)


@dataclass(frozen=True, slots=True)
class Request:
    """One request to a backend, relative to its base URL."""

    method: str
    path: str
    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request of a tool (or of the handoff notice), and how to read its answer."""

    name: str  # the tool's name, or "handoff": its url_overrides key and its name in logs
    backend: Backend
    voice: Voice
    read: ResultReader
    needs_body: bool = True  # a 2xx answer must be a JSON object


class _RetryableStatus(Exception):
    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _retryable(exc: BaseException) -> bool:
    # RemoteProtocolError: the server dropped a kept-alive connection before answering.
    return isinstance(
        exc,
        _RetryableStatus | httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError,
    )


def idempotency_key(ctx: ToolContext, tool: str, arguments: Mapping[str, Any]) -> str:
    """The same call asking for the same thing gets the same key, so a retry (ours or the
    model's) never books twice. Without a call to tie it to, a fresh key per run."""
    scope = ctx.call_sid or ctx.conversation_id
    if scope is None:
        return f"velox-{uuid.uuid4().hex}"
    canonical = json.dumps(
        [ctx.org_id, ctx.agent_id, scope, tool, dict(arguments)],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return f"velox-{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"


class ToolHttp:
    """Sends the tools' requests over one shared client and says what came of each.

    `clock` times each run for its outcome's `latency_s`; `sleep` waits out the backoff between
    attempts. Tests pass their own, to check both without a stopwatch.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._sleep = sleep
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            headers={"User-Agent": "velox-tools", "Accept": "application/json"},
            follow_redirects=False,
        )

    async def exchange(
        self,
        exchange: Exchange,
        args: dict[str, Any],
        request: Request,
        ctx: ToolContext,
        started: float,
    ) -> ToolOutcome:
        """Send `request` (a POST with an idempotency key) and read the answer; `started` is
        when the run began, on `clock`."""
        name, voice = exchange.name, exchange.voice
        endpoint = exchange.backend.endpoint(ctx.url_overrides.get(name))
        if endpoint is None:
            why = f"{name} is not set up ({exchange.backend.url_setting} is not set)"
            latency = self.clock() - started
            return failure(name, args, latency, ctx, why, voice.unreachable, level=logging.INFO)
        base, token = endpoint
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        key = idempotency_key(ctx, name, args) if request.method == "POST" else None
        if key:
            headers["Idempotency-Key"] = key
        try:
            response = await self._send(
                base, request, headers, safe=request.method == "GET" or bool(key)
            )
        except _RetryableStatus as exc:
            response = exc.response
        except httpx.TimeoutException:
            why = f"{voice.system} did not answer within {self.settings.tools.tool_timeout_s:g} s"
            return failure(name, args, self.clock() - started, ctx, why, voice.unreachable)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            why = f"{voice.system} is unreachable ({type(exc).__name__})"
            return failure(name, args, self.clock() - started, ctx, why, voice.unreachable)
        return _interpret(exchange, args, response, ctx, self.clock() - started)

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_client:
            await self._client.aclose()

    async def _send(
        self, base: str, request: Request, headers: dict[str, str], *, safe: bool
    ) -> httpx.Response:
        """One request, retried while safe and while the tool's time budget lasts.

        TOOL_TIMEOUT_S bounds the whole run, retries included: a caller is waiting on the line.
        """
        budget = self.settings.tools.tool_timeout_s
        deadline = time.monotonic() + budget
        attempts = 1 + (max(self.settings.tools.tool_retries, 0) if safe else 0)
        response: httpx.Response | None = None
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(attempts) | stop_before_delay(budget),
            wait=wait_exponential(multiplier=0.1, max=1.0),
            sleep=self._sleep,
            reraise=True,
        ):
            with attempt:
                remaining = max(deadline - time.monotonic(), 0.01)
                response = await self._client.request(
                    request.method,
                    base + request.path,
                    params=request.params,
                    json=request.body,
                    headers=headers,
                    # Connecting gets half the budget at most, so a lost SYN leaves time to retry.
                    timeout=httpx.Timeout(remaining, connect=min(remaining, budget / 2)),
                )
                if response.status_code in _RETRY_STATUSES:
                    raise _RetryableStatus(response)
        assert response is not None  # AsyncRetrying ran at least once
        return response


class HttpTool(Tool):
    """A tool that asks a business system over HTTP: it says where the system is, what to send
    and how to read the answer; `ToolHttp` does the rest."""

    voice: ClassVar[Voice]

    @abstractmethod
    def backend(self) -> Backend:
        """Where the deployment's settings put the tool's system."""

    @abstractmethod
    def request(self, args: dict[str, Any]) -> Request:
        """The request for the checked arguments."""

    @abstractmethod
    def read(
        self, status: int, args: dict[str, Any], body: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The model's result from the answer, or None when it is a failure."""

    def complete(self, raw: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """The model's arguments with what the call itself tells (before they are checked)."""
        return raw

    def lacking(self, args: dict[str, Any]) -> str | None:
        """What is still missing from checked arguments before asking is worth it, if anything."""
        return None

    def base_url(self, overrides: Mapping[str, str] = _NONE) -> str | None:
        """The base URL the tool calls: the agent's override, else the settings'."""
        endpoint = self.backend().endpoint(overrides.get(self.name))
        return endpoint[0] if endpoint else None

    def configured(self) -> bool:
        return self.base_url() is not None

    def usable(self, agent: AgentProfile) -> bool:
        return self.base_url(agent.tool_urls) is not None

    async def run(
        self, call: ToolCall, ctx: ToolContext, state: ConversationState, result: TurnResult
    ) -> ToolOutcome:
        return await self.ask(call, ctx)

    async def ask(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome:
        """Check the model's arguments, ask the system, and say what came of it (all an HTTP
        tool needs of the turn is the call)."""
        http = self.deps.http
        started = http.clock()
        name, voice = self.name, self.voice
        raw = self.complete(
            dict(call.arguments) if isinstance(call.arguments, Mapping) else {}, ctx
        )
        try:
            args = self.check(raw)
        except ToolArgumentError as exc:
            why = f"invalid arguments: {exc}. Ask the caller, then call {name} again."
            return failure(name, raw, http.clock() - started, ctx, why, voice.invalid)
        if (missing := self.lacking(args)) is not None:
            return failure(name, args, http.clock() - started, ctx, missing, voice.invalid)
        exchange = Exchange(name, self.backend(), voice, self.read)
        return await http.exchange(exchange, args, self.request(args), ctx, started)


def failure(
    name: str,
    args: dict[str, Any],
    latency: float,
    ctx: ToolContext,
    why: str,
    fallback: str,
    *,
    level: int = logging.WARNING,
) -> ToolOutcome:
    """A failed run that took `latency` seconds, logged with its call."""
    logger.log(
        level,
        "tool %s failed in %.2f s, call %s org %s: %s",
        name,
        latency,
        ctx.call_sid,
        ctx.org_id,
        why,
    )
    return ToolOutcome(name, args, False, {"error": why}, fallback, latency, error=why)


def _interpret(
    exchange: Exchange,
    args: dict[str, Any],
    response: httpx.Response,
    ctx: ToolContext,
    latency: float,
) -> ToolOutcome:
    name, voice = exchange.name, exchange.voice
    status = response.status_code
    body = _json_object(response)
    if status in (401, 403):
        why = f"{voice.system} refused our credentials (HTTP {status})"
        return failure(name, args, latency, ctx, why, voice.unreachable)
    if status in _RETRY_STATUSES:
        why = f"{voice.system} is unavailable (HTTP {status})"
        return failure(name, args, latency, ctx, why, voice.unreachable)
    if 200 <= status < 300 and body is None and exchange.needs_body:
        why = f"{voice.system} sent an answer that is not a JSON object (HTTP {status})"
        return failure(name, args, latency, ctx, why, voice.unreachable)
    result = exchange.read(status, args, body)
    if result is None:
        detail = _detail(body)
        why = f"{voice.system} rejected the request (HTTP {status}"
        why += f": {detail})" if detail else ")"
        fallback = voice.rejected if 400 <= status < 500 else voice.unreachable
        return failure(name, args, latency, ctx, why, fallback)
    logger.info(
        "tool %s ok (HTTP %d) in %.2f s, call %s org %s",
        name,
        status,
        latency,
        ctx.call_sid,
        ctx.org_id,
    )
    return ToolOutcome(name, args, True, result, None, latency)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _detail(body: dict[str, Any] | None) -> str:
    if not body:
        return ""
    detail = body.get("error") or body.get("message") or body.get("detail") or ""
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return text[:200]


def lookup(
    key: str, status: int, args: dict[str, Any], body: dict[str, Any] | None
) -> dict[str, Any] | None:
    """A lookup's result: found, with the body, on a 2xx; not found, with the `key` asked
    for, on a 404."""
    if status == 404:
        return {"found": False, key: args[key]}
    if 200 <= status < 300 and body is not None:
        return {"found": True, **body}
    return None
