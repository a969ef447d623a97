"""What the tools that call a business system over HTTP share: where each request goes (the
agent's URL, else the deployment's for the orgs allowed it), one client per kind of URL, retries
within the tool's time budget, answers capped in size, idempotency keys, and reading status codes
the same way for every tool.

A tenant's URL is reached only through `app.tools.network` (no loopback, private or metadata
address, no redirect); the deployment's own URLs are the operator's and are trusted. Failures
reach the model, the transcript and the tenant as one generic sentence; the details (status,
exception, URL) go to the server log.

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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
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
from app.tools.contract import Contract, code
from app.tools.network import RefusedAddress, guarded_client
from app.tools.urls import ToolUrlError, check_tool_url, join, tool_url_problem

if TYPE_CHECKING:
    from app.conversation.agent import AgentProfile
    from app.conversation.engine import ConversationState, TurnResult

logger = logging.getLogger(__name__)

_NONE: Mapping[str, str] = MappingProxyType({})

# Retried only when the answer says "try again": rate limited, or a gateway or server hiccup.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_HEADERS = {
    "User-Agent": "velox-tools",
    "Accept": "application/json",
    # Read as sent: a compressed answer could inflate far past the size cap in one chunk.
    "Accept-Encoding": "identity",
}

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
class Endpoint:
    """Where one run's request goes, with the key it carries."""

    url: str
    key: str | None
    # The deployment's own URL: the operator's, trusted, and the only one that gets the key.
    operator: bool


@dataclass(frozen=True, slots=True)
class Backend:
    """Where the deployment's settings put a business system."""

    url_setting: str  # the variable that sets `url`, named when it is unset: "ORDER_API_URL"
    url: str | None
    key: SecretStr | None

    def endpoint(self, override: str | None, *, operator: bool) -> Endpoint | None:
        """The agent's `override`, else the settings' URL when `operator` (the org may use the
        deployment's URLs); None when there is neither."""
        own = self.url.rstrip("/") if self.url and operator else None
        key = self.key.get_secret_value() if self.key else None
        if override:
            url = override.rstrip("/")
            # The key belongs to the URL in the settings: an agent's own URL never receives it.
            if own is not None and url == own:
                return Endpoint(own, key, operator=True)
            return Endpoint(url, None, operator=False)
        return Endpoint(own, key, operator=True) if own is not None else None


@dataclass(frozen=True, slots=True)
class Request:
    """One request to a backend: path segments under its base URL (each escaped on its own,
    so an argument can never leave its segment), query parameters and a JSON body."""

    method: str
    path: tuple[str, ...]
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


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: the status, the body as sent (within the cap) and where a redirect
    pointed (for the log only: redirects are never followed)."""

    status: int
    content: bytes
    location: str | None = None


class _RetryableStatus(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(f"HTTP {answer.status}")
        self.answer = answer


class TooLarge(Exception):
    """An answer over TOOL_MAX_RESPONSE_KB, or compressed when asked not to be."""


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


def did_not_answer(voice: Voice) -> str:
    """The one failure a tenant is told of when the system could not be asked or answered
    badly, whatever the reason (the log has it)."""
    return f"{voice.system} did not answer"


class ToolHttp:
    """Sends the tools' requests and says what came of each.

    The deployment's URLs (for the orgs allowed them: VELOX_TOOL_URL_ORGS, the demo org, and
    agents with no org at all, i.e. no database) go through `client`; an agent's own URLs
    through a client that connects to public addresses only (private ones too with
    VELOX_ALLOW_PRIVATE_TOOL_URLS, for development). `clock` times each run for its outcome's
    `latency_s`; `sleep` waits out the backoff between attempts. Tests pass their own, to check
    both without a stopwatch.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        operator_orgs: Iterable[str] = (),
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.operator_orgs = frozenset(settings.tools.operator_url_orgs) | frozenset(operator_orgs)
        self.allow_private = settings.tools.velox_allow_private_tool_urls
        self.clock = clock
        self._sleep = sleep
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(headers=_HEADERS, follow_redirects=False)
        self._tenant_client = guarded_client(allow_private=self.allow_private, headers=_HEADERS)

    def operator_urls(self, org_id: str | None) -> bool:
        """Whether the deployment's tool URLs and keys serve `org_id`."""
        return org_id is None or org_id in self.operator_orgs

    def endpoint(
        self, backend: Backend, override: str | None, org_id: str | None
    ) -> Endpoint | None:
        """Where `org_id`'s request goes: its agent's `override`, else the deployment's URL."""
        return backend.endpoint(override, operator=self.operator_urls(org_id))

    def usable(self, backend: Backend, override: str | None, org_id: str | None) -> bool:
        """Whether there is somewhere to send the request that may be used."""
        endpoint = self.endpoint(backend, override, org_id)
        if endpoint is None:
            return False
        return (
            endpoint.operator
            or tool_url_problem(endpoint.url, allow_private=self.allow_private) is None
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
        endpoint = self.endpoint(exchange.backend, ctx.url_overrides.get(name), ctx.org_id)

        def failed(detail: str, *, level: int = logging.WARNING) -> ToolOutcome:
            why = did_not_answer(voice)
            latency = self.clock() - started
            return failure(
                name, args, latency, ctx, why, voice.unreachable, detail=detail, level=level
            )

        if endpoint is None:
            return failure(
                name,
                args,
                self.clock() - started,
                ctx,
                f"{voice.system} is not set up",
                voice.unreachable,
                detail=f"no URL of the agent's, and {exchange.backend.url_setting} is not set "
                "or does not serve this org (VELOX_TOOL_URL_ORGS)",
                level=logging.INFO,
            )
        headers = {"Authorization": f"Bearer {endpoint.key}"} if endpoint.key else {}
        key = idempotency_key(ctx, name, args) if request.method == "POST" else None
        if key:
            headers["Idempotency-Key"] = key
        try:
            if not endpoint.operator:
                check_tool_url(endpoint.url, allow_private=self.allow_private)
            url = join(endpoint.url, request.path)
        except ToolUrlError as exc:
            return failed(f"the agent's URL {endpoint.url!r} is refused: {exc}")
        where = f"{'operator' if endpoint.operator else 'agent'} URL {url}"
        client = self._client if endpoint.operator else self._tenant_client
        try:
            answer = await self._send(
                client, url, request, headers, safe=request.method == "GET" or bool(key)
            )
        except _RetryableStatus as exc:
            answer = exc.answer
        except (httpx.TimeoutException, TimeoutError):
            budget = self.settings.tools.tool_timeout_s
            return failed(f"no answer within {budget:g} s from {where}")
        except RefusedAddress as exc:
            return failed(f"refused to connect to {where}: {exc}")
        except TooLarge as exc:
            return failed(f"{where}: {exc}")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return failed(f"{where} is unreachable ({type(exc).__name__}: {exc})")
        return _interpret(exchange, args, answer, ctx, self.clock() - started, where)

    async def aclose(self) -> None:
        """Close the HTTP clients this object made."""
        await self._tenant_client.aclose()
        if self._owns_client:
            await self._client.aclose()

    async def _send(
        self,
        client: httpx.AsyncClient,
        url: httpx.URL,
        request: Request,
        headers: dict[str, str],
        *,
        safe: bool,
    ) -> Answer:
        """One request, retried while safe and while the tool's time budget lasts.

        TOOL_TIMEOUT_S bounds the whole run, retries and reading the answer included: a caller
        is waiting on the line, and a server that trickles its answer must not hold the turn.
        """
        budget = self.settings.tools.tool_timeout_s
        deadline = time.monotonic() + budget
        attempts = 1 + (max(self.settings.tools.tool_retries, 0) if safe else 0)
        answer: Answer | None = None
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(attempts) | stop_before_delay(budget),
            wait=wait_exponential(multiplier=0.1, max=1.0),
            sleep=self._sleep,
            reraise=True,
        ):
            with attempt:
                remaining = max(deadline - time.monotonic(), 0.01)
                # Connecting gets half the budget at most, so a lost SYN leaves time to retry.
                waits = httpx.Timeout(remaining, connect=min(remaining, budget / 2))
                async with asyncio.timeout(remaining):
                    answer = await self._attempt(client, url, request, headers, waits)
                if answer.status in _RETRY_STATUSES:
                    raise _RetryableStatus(answer)
        assert answer is not None  # AsyncRetrying ran at least once
        return answer

    async def _attempt(
        self,
        client: httpx.AsyncClient,
        url: httpx.URL,
        request: Request,
        headers: dict[str, str],
        waits: httpx.Timeout,
    ) -> Answer:
        cap = max(self.settings.tools.tool_max_response_kb, 1) * 1024
        async with client.stream(
            request.method,
            url,
            params=request.params,
            json=request.body,
            headers=headers,
            timeout=waits,
        ) as response:
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise TooLarge(f"answered with Content-Encoding {encoding[:40]!r}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise TooLarge(f"declared {declared} bytes, over the {cap} byte cap")
            content = bytearray()
            async for chunk in response.aiter_raw():
                content += chunk
                if len(content) > cap:  # stop reading: the rest never arrives in memory
                    raise TooLarge(f"sent more than the {cap} byte cap")
            return Answer(response.status_code, bytes(content), response.headers.get("location"))


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
        """The model's result from the answer (only its contract's fields), or None when it
        is a failure."""

    def complete(self, raw: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        """The model's arguments with what the call itself tells (before they are checked)."""
        return raw

    def lacking(self, args: dict[str, Any]) -> str | None:
        """What is still missing from checked arguments before asking is worth it, if anything."""
        return None

    def tell(self, result: dict[str, Any]) -> str | None:
        """The result as the caller should hear it, when the tool can say it (None: the model
        puts it in words)."""
        return None

    def base_url(
        self, overrides: Mapping[str, str] = _NONE, org_id: str | None = None
    ) -> str | None:
        """The base URL the tool calls for `org_id`: the agent's override, else the settings'
        (when they serve that org)."""
        endpoint = self.deps.http.endpoint(self.backend(), overrides.get(self.name), org_id)
        return endpoint.url if endpoint else None

    def configured(self) -> bool:
        return self.base_url() is not None

    def usable(self, agent: AgentProfile) -> bool:
        return self.deps.http.usable(self.backend(), agent.tool_urls.get(self.name), agent.org_id)

    async def run(
        self, call: ToolCall, ctx: ToolContext, state: ConversationState, result: TurnResult
    ) -> ToolOutcome:
        outcome = await self.ask(call, ctx)
        return replace(outcome, told=self.tell(outcome.result)) if outcome.ok else outcome

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
    detail: str | None = None,
    level: int = logging.WARNING,
) -> ToolOutcome:
    """A failed run that took `latency` seconds: `why` is what the model and the records get,
    `detail` (else `why`) what the log gets."""
    logger.log(
        level,
        "tool %s failed in %.2f s, call %s org %s: %s",
        name,
        latency,
        ctx.call_sid,
        ctx.org_id,
        detail or why,
    )
    return ToolOutcome(name, args, False, {"error": why}, fallback, latency, error=why)


def _interpret(
    exchange: Exchange,
    args: dict[str, Any],
    answer: Answer,
    ctx: ToolContext,
    latency: float,
    where: str,
) -> ToolOutcome:
    name, voice = exchange.name, exchange.voice
    status = answer.status
    body = _json_object(answer.content)

    def failed(detail: str, why: str | None = None, fallback: str | None = None) -> ToolOutcome:
        return failure(
            name,
            args,
            latency,
            ctx,
            why or did_not_answer(voice),
            fallback or voice.unreachable,
            detail=f"{where}: {detail}",
        )

    if 300 <= status < 400:
        return failed(
            f"redirect (HTTP {status}) to {(answer.location or '?')[:200]!r}, not followed"
        )
    if status in (401, 403):
        return failed(f"refused our credentials (HTTP {status})")
    if status in _RETRY_STATUSES:
        return failed(f"unavailable (HTTP {status}): {_detail(body)}")
    if 200 <= status < 300 and body is None and exchange.needs_body:
        return failed(f"an answer that is not a JSON object (HTTP {status})")
    result = exchange.read(status, args, body)
    if result is None:
        if not 400 <= status < 500:
            return failed(f"unexpected answer (HTTP {status}): {_detail(body)}")
        # The contract's error code ("date_in_past") tells the model what to say; free text
        # from the system does not pass.
        error = code(body.get("error")) if body else None
        why = f"{voice.system} rejected the request" + (f" ({error})" if error else "")
        return failed(f"rejected (HTTP {status}): {_detail(body)}", why, voice.rejected)
    logger.info(
        "tool %s ok (HTTP %d) in %.2f s, call %s org %s",
        name,
        status,
        latency,
        ctx.call_sid,
        ctx.org_id,
    )
    return ToolOutcome(name, args, True, result, None, latency)


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):  # deep nesting is a RecursionError, not a ValueError
        return None
    return data if isinstance(data, dict) else None


def _detail(body: dict[str, Any] | None) -> str:
    if not body:
        return ""
    detail = body.get("error") or body.get("message") or body.get("detail") or ""
    text = detail if isinstance(detail, str) else json.dumps(detail)
    return text[:200]


def lookup(
    key: str,
    status: int,
    args: dict[str, Any],
    body: dict[str, Any] | None,
    contract: Contract,
) -> dict[str, Any] | None:
    """A lookup's result: found, with the contract's fields of the body, on a 2xx; not found,
    with the `key` asked for, on a 404."""
    if status == 404:
        return {"found": False, key: args[key]}
    if 200 <= status < 300 and body is not None:
        return {"found": True, **contract.pick(body)}
    return None
