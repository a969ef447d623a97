"""The business tools a voice agent may call: their specs for the model, and the HTTP calls
behind the four data tools and the handoff notice (contracts in the README, "Tool HTTP
contracts"; `velox demo-backend` implements them).

A tool never raises for an HTTP or network problem: it returns a `ToolOutcome` whose `result` is
what the model reads next and whose `spoken_fallback` is a sentence the caller can hear.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from types import MappingProxyType
from typing import Any, Literal, get_args
from urllib.parse import quote

import httpx
from pydantic import SecretStr
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from app.llm.base import ToolCall, ToolSpec
from app.settings import Settings

logger = logging.getLogger(__name__)

ToolName = Literal[
    "check_order_status",
    "check_item_stock",
    "book_appointment",
    "get_customer_profile",
    "transfer_to_agent",
    "search_knowledge_base",
    "end_call",
]
TOOL_NAMES: tuple[str, ...] = get_args(ToolName)

HTTP_TOOLS: dict[str, str] = {
    "check_order_status": "order",
    "check_item_stock": "inventory",
    "book_appointment": "calendar",
    "get_customer_profile": "crm",
}
HANDOFF = "handoff"  # the settings prefix and url_overrides key of the handoff notice
_NONE: Mapping[str, str] = MappingProxyType({})

# Caller-facing numbers and times are spoken, so the patterns are loose and the values are
# normalised first (see _NORMALISERS): "a 1042" becomes "A1042", "2:30 pm" becomes "14:30".
_ORDER_ID = r"^[A-Za-z0-9][A-Za-z0-9-]{2,19}$"
_PHONE = r"^\+?[0-9]{7,15}$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


def _object(properties: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    # Only the JSON-schema subset every engine accepts (Gemini's function declarations and
    # llama.cpp's grammar both): no `format`, no `additionalProperties`. Unknown keys a model
    # adds are dropped before validation instead.
    return {"type": "object", "properties": properties, "required": required}


def _text(description: str, *, max_length: int = 200, **extra: Any) -> dict[str, Any]:
    return {
        "type": "string",
        "description": description,
        "minLength": 1,
        "maxLength": max_length,
        **extra,
    }


TOOL_SPECS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "check_order_status",
            "Look up an order's status, delivery date and tracking. Use only when the caller "
            "gave an order number; if they did not, ask for it first. Never guess a number.",
            _object(
                {
                    "order_id": _text(
                        "the order number as the caller said it, e.g. A1042",
                        max_length=20,
                        pattern=_ORDER_ID,
                    )
                },
                ["order_id"],
            ),
        ),
        ToolSpec(
            "check_item_stock",
            "Check whether a product is in stock, how many are left and when it comes back. "
            "Use when the caller asks if we have something. Not for orders already placed.",
            _object(
                {
                    "item": _text(
                        "the product name or SKU, e.g. croissant or CR-200", max_length=100
                    )
                },
                ["item"],
            ),
        ),
        ToolSpec(
            "book_appointment",
            "Book an appointment. Use only once the caller has given their name, a date and a "
            "time and has agreed to book. Never invent a date or time: ask. If the slot is "
            "taken, offer the alternatives returned.",
            _object(
                {
                    "name": _text("the caller's name", max_length=100),
                    "date": _text("the day, YYYY-MM-DD", max_length=10, pattern=_DATE),
                    "time": _text("the start time, 24-hour HH:MM", max_length=5, pattern=_TIME),
                    "phone": _text(
                        "a phone number to confirm on, if the caller gave one",
                        max_length=16,
                        pattern=_PHONE,
                    ),
                    "reason": _text("what the appointment is for, in a few words"),
                },
                ["name", "date", "time"],
            ),
        ),
        ToolSpec(
            "get_customer_profile",
            "Look up the caller's customer record: name, tier, open orders, notes. Use when "
            "knowing who is calling helps. Leave phone out to use the number they call from.",
            _object(
                {
                    "phone": _text(
                        "only if the caller gave another number for their account",
                        max_length=16,
                        pattern=_PHONE,
                    )
                },
                [],
            ),
        ),
        ToolSpec(
            "transfer_to_agent",
            "Transfer the call to a person. Use when the caller asks for a human, is upset, "
            "or needs something you cannot do. Say you are transferring them first.",
            _object(
                {
                    "reason": _text("why, in a few words"),
                    "department": {
                        "type": "string",
                        "description": "which team, if clear",
                        "enum": ["sales", "support", "billing"],
                    },
                },
                ["reason"],
            ),
        ),
        ToolSpec(
            "search_knowledge_base",
            "Search our documents for facts: policies, prices, menus, opening hours. Use for "
            "questions you cannot answer from the conversation. Not for orders or stock.",
            _object({"query": _text("what to look up, in a few words")}, ["query"]),
        ),
        ToolSpec(
            "end_call",
            "Hang up. Use only after the caller said goodbye or has nothing more to ask, and "
            "you have said goodbye too.",
            _object({"reason": _text("why the call ends, in a few words")}, []),
        ),
    )
}


class ToolArgumentError(ValueError):
    """The model's arguments do not fit the tool; the message says what to ask the caller."""


def _compact(value: str) -> str:
    return re.sub(r"[\s().-]", "", value)


def _order_id(value: str) -> str:
    return re.sub(r"\s", "", value).lstrip("#").upper()


def _clock(value: str) -> str:
    """'9:30' → '09:30', '2:30 pm' → '14:30', '2pm' → '14:00'; anything else unchanged."""
    text = value.strip().lower()
    match = re.fullmatch(r"(\d{1,2})(?:[:.](\d{2}))?\s*([ap])\.?\s*m\.?", text)
    if match:
        hour = int(match.group(1)) % 12 + (12 if match.group(3) == "p" else 0)
        return f"{hour:02d}:{match.group(2) or '00'}"
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    return f"{int(match.group(1)):02d}:{match.group(2)}" if match else value.strip()


_NORMALISERS: dict[str, Callable[[str], str]] = {
    "order_id": _order_id,
    "phone": _compact,
    "time": _clock,
}


def validate_arguments(name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The model's arguments for tool `name`, normalised and checked against its JSON schema.

    Unknown keys and empty optional values are dropped (small models add both); strings are
    trimmed. Raises `ToolArgumentError` naming each problem, e.g. "missing date".
    """
    spec = TOOL_SPECS.get(name)
    if spec is None:
        raise ToolArgumentError(f"there is no tool named {name!r}")
    if not isinstance(arguments, Mapping):
        raise ToolArgumentError("the arguments must be a JSON object")
    properties: dict[str, Any] = spec.parameters["properties"]
    required: list[str] = spec.parameters["required"]
    args: dict[str, Any] = {}
    for key, value in arguments.items():
        if key not in properties:
            continue
        if isinstance(value, str):
            value = _NORMALISERS.get(key, str.strip)(value.strip())
        if key not in required and value in ("", None):
            continue
        args[key] = value
    problems = [_explain(e, properties) for e in _validator(name).iter_errors(args)]
    if not problems and isinstance(args.get("date"), str):
        try:
            date.fromisoformat(args["date"])
        except ValueError:
            problems.append(f"date {args['date']} is not a real calendar day")
    if problems:
        raise ToolArgumentError("; ".join(sorted(set(problems))))
    return args


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator  # 60 ms to import: only once a tool runs

    return Draft202012Validator(TOOL_SPECS[name].parameters)


def _explain(error: Any, properties: dict[str, Any]) -> str:
    if error.validator == "required":
        missing = re.search(r"'([^']+)'", error.message)
        return f"missing {missing.group(1) if missing else 'a required value'}"
    field_name = str(error.path[0]) if error.path else None
    if field_name is None:
        return "the arguments must be a JSON object"
    prop = properties[field_name]
    if "enum" in prop:
        return f"{field_name} must be one of {', '.join(prop['enum'])}"
    return f"{field_name} is not valid (expected {prop['description']})"


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
class _Voice:
    system: str  # how errors name the backend, for the model
    unreachable: str
    rejected: str
    invalid: str


_VOICES: dict[str, _Voice] = {
    "check_order_status": _Voice(
        "the order system",
        "I can't reach our order system right now.",
        "I couldn't look up that order just now.",
        "Could you tell me your order number?",
    ),
    "check_item_stock": _Voice(
        "the inventory system",
        "I can't check our stock right now.",
        "I couldn't check that item just now.",
        "Which item would you like me to check?",
    ),
    "book_appointment": _Voice(
        "the booking calendar",
        "I can't reach our booking calendar right now.",
        "I couldn't book that appointment.",
        "I need your name, a day and a time to book that.",
    ),
    "get_customer_profile": _Voice(
        "the customer records",
        "I can't pull up your account right now.",
        "I couldn't find your account details just now.",
        "Could you tell me the phone number on your account?",
    ),
    HANDOFF: _Voice(
        "the handoff service",
        "I couldn't pass your details to the team, so you may need to repeat them.",
        "I couldn't pass your details to the team, so you may need to repeat them.",
        "I couldn't pass your details to the team, so you may need to repeat them.",
    ),
}
_UNKNOWN_TOOL = "Sorry, I can't do that on this call."

# Retried only when the answer says "try again": rate limited, or a gateway or server hiccup.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None


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


class HttpTools:
    """Runs the four data tools and the handoff notice over HTTP, one shared client."""

    def __init__(self, settings: Settings, *, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            headers={"User-Agent": "velox-tools", "Accept": "application/json"},
            follow_redirects=False,
        )

    def base_url(self, name: str, overrides: Mapping[str, str] = _NONE) -> str | None:
        """The base URL tool `name` (or "handoff") calls: the agent's override, else settings."""
        endpoint = self._endpoint(name, overrides)
        return endpoint[0] if endpoint else None

    def available(self, names: Iterable[str], overrides: Mapping[str, str] = _NONE) -> list[str]:
        """The HTTP tools among `names` that have a URL, in order; other names are left out."""
        seen: list[str] = []
        for name in names:
            if name in HTTP_TOOLS and name not in seen and self.base_url(name, overrides):
                seen.append(name)
        return seen

    async def run(self, call: ToolCall, ctx: ToolContext) -> ToolOutcome:
        """Validate the model's arguments, call the tool's API, and say what came of it."""
        started = time.perf_counter()
        name = call.name
        raw = dict(call.arguments) if isinstance(call.arguments, Mapping) else {}
        if name not in HTTP_TOOLS:
            why = f"{name} is not a tool this agent can run here"
            return self._failure(name, raw, started, ctx, why, _UNKNOWN_TOOL)
        voice = _VOICES[name]
        if name == "get_customer_profile" and not raw.get("phone") and ctx.caller_number:
            caller = _compact(ctx.caller_number)
            if re.fullmatch(_PHONE, caller):  # Twilio sends "Anonymous" for withheld numbers
                raw["phone"] = caller
        try:
            args = validate_arguments(name, raw)
        except ToolArgumentError as exc:
            why = f"invalid arguments: {exc}. Ask the caller, then call {name} again."
            return self._failure(name, raw, started, ctx, why, voice.invalid)
        if name == "get_customer_profile" and "phone" not in args:
            why = "missing phone: the caller's number is withheld; ask for the account's number"
            return self._failure(name, args, started, ctx, why, voice.invalid)
        request = _request_for(name, args)
        key = idempotency_key(ctx, name, args) if request.method == "POST" else None
        return await self._exchange(name, args, request, key, ctx, started)

    async def notify_handoff(
        self,
        ctx: ToolContext,
        *,
        reason: str,
        summary: str,
        transcript: list[dict[str, str]],
    ) -> ToolOutcome:
        """Tell the team taking the call who is coming and why (POST /handoffs)."""
        started = time.perf_counter()
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
        request = _Request("POST", "/handoffs", body=body)
        # The transcript grows while the call goes on, so only the gist names the request.
        key = idempotency_key(ctx, HANDOFF, args)
        return await self._exchange(HANDOFF, args, request, key, ctx, started)

    async def aclose(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> HttpTools:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _endpoint(self, name: str, overrides: Mapping[str, str]) -> tuple[str, str | None] | None:
        prefix = HANDOFF if name == HANDOFF else HTTP_TOOLS.get(name)
        if prefix is None:
            return None
        configured: str | None = getattr(self.settings, f"{prefix}_api_url")
        secret: SecretStr | None = getattr(self.settings, f"{prefix}_api_key")
        url = overrides.get(name) or configured
        if not url:
            return None
        url = url.rstrip("/")
        # The key belongs to the URL in the settings: an agent's own URL never receives it.
        same = configured is not None and url == configured.rstrip("/")
        return url, (secret.get_secret_value() if secret and same else None)

    async def _exchange(
        self,
        name: str,
        args: dict[str, Any],
        request: _Request,
        key: str | None,
        ctx: ToolContext,
        started: float,
    ) -> ToolOutcome:
        voice = _VOICES[name]
        endpoint = self._endpoint(name, ctx.url_overrides)
        if endpoint is None:
            prefix = HTTP_TOOLS.get(name, name).upper()
            why = f"{name} is not set up ({prefix}_API_URL is not set)"
            return self._failure(
                name, args, started, ctx, why, voice.unreachable, level=logging.INFO
            )
        base, token = endpoint
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if key:
            headers["Idempotency-Key"] = key
        try:
            response = await self._send(
                base, request, headers, safe=request.method == "GET" or bool(key)
            )
        except _RetryableStatus as exc:
            response = exc.response
        except httpx.TimeoutException:
            why = f"{voice.system} did not answer within {self.settings.tool_timeout_s:g} s"
            return self._failure(name, args, started, ctx, why, voice.unreachable)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            why = f"{voice.system} is unreachable ({type(exc).__name__})"
            return self._failure(name, args, started, ctx, why, voice.unreachable)
        return self._interpret(name, args, response, ctx, started)

    async def _send(
        self, base: str, request: _Request, headers: dict[str, str], *, safe: bool
    ) -> httpx.Response:
        """One request, retried while safe and while the tool's time budget lasts.

        TOOL_TIMEOUT_S bounds the whole run, retries included: a caller is waiting on the line.
        """
        budget = self.settings.tool_timeout_s
        deadline = time.monotonic() + budget
        attempts = 1 + (max(self.settings.tool_retries, 0) if safe else 0)
        response: httpx.Response | None = None
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(attempts) | stop_before_delay(budget),
            wait=wait_exponential(multiplier=0.1, max=1.0),
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

    def _interpret(
        self,
        name: str,
        args: dict[str, Any],
        response: httpx.Response,
        ctx: ToolContext,
        started: float,
    ) -> ToolOutcome:
        voice = _VOICES[name]
        status = response.status_code
        body = _json_object(response)
        if status in (401, 403):
            why = f"{voice.system} refused our credentials (HTTP {status})"
            return self._failure(name, args, started, ctx, why, voice.unreachable)
        if status in _RETRY_STATUSES:
            why = f"{voice.system} is unavailable (HTTP {status})"
            return self._failure(name, args, started, ctx, why, voice.unreachable)
        if 200 <= status < 300 and body is None and name != HANDOFF:
            why = f"{voice.system} sent an answer that is not a JSON object (HTTP {status})"
            return self._failure(name, args, started, ctx, why, voice.unreachable)
        result = _RESULTS[name](status, args, body)
        if result is None:
            detail = _detail(body)
            why = f"{voice.system} rejected the request (HTTP {status}"
            why += f": {detail})" if detail else ")"
            fallback = voice.rejected if 400 <= status < 500 else voice.unreachable
            return self._failure(name, args, started, ctx, why, fallback)
        latency = time.perf_counter() - started
        logger.info(
            "tool %s ok (HTTP %d) in %.2f s, call %s org %s",
            name,
            status,
            latency,
            ctx.call_sid,
            ctx.org_id,
        )
        return ToolOutcome(name, args, True, result, None, latency)

    def _failure(
        self,
        name: str,
        args: dict[str, Any],
        started: float,
        ctx: ToolContext,
        why: str,
        fallback: str,
        *,
        level: int = logging.WARNING,
    ) -> ToolOutcome:
        latency = time.perf_counter() - started
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


def _request_for(name: str, args: dict[str, Any]) -> _Request:
    if name == "check_order_status":
        return _Request("GET", f"/orders/{quote(args['order_id'], safe='')}")
    if name == "check_item_stock":
        return _Request("GET", "/stock", params={"item": args["item"]})
    if name == "book_appointment":
        return _Request("POST", "/appointments", body=args)
    return _Request("GET", "/customers", params={"phone": args["phone"]})


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


# Each maps (status, arguments, JSON body) to the model's result, or None for a failure. A 404
# or a taken slot is an answer, not a failure: the tool worked and the model can say so.
_Result = Callable[[int, dict[str, Any], dict[str, Any] | None], dict[str, Any] | None]


def _lookup(key: str) -> _Result:
    def result(
        status: int, args: dict[str, Any], body: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        if status == 404:
            return {"found": False, key: args[key]}
        if 200 <= status < 300 and body is not None:
            return {"found": True, **body}
        return None

    return result


def _booking(
    status: int, args: dict[str, Any], body: dict[str, Any] | None
) -> dict[str, Any] | None:
    if 200 <= status < 300 and body is not None:
        return {"booked": True, **body}
    if status == 409 and body is not None:
        alternatives = body.get("alternatives")
        return {
            "booked": False,
            "reason": body.get("error") or "slot_taken",
            "date": args["date"],
            "time": args["time"],
            "alternatives": alternatives if isinstance(alternatives, list) else [],
        }
    return None


def _handoff(
    status: int, args: dict[str, Any], body: dict[str, Any] | None
) -> dict[str, Any] | None:
    return {"notified": True, **(body or {})} if 200 <= status < 300 else None


_RESULTS: dict[str, _Result] = {
    "check_order_status": _lookup("order_id"),
    "check_item_stock": _lookup("item"),
    "book_appointment": _booking,
    "get_customer_profile": _lookup("phone"),
    HANDOFF: _handoff,
}
