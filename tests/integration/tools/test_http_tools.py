"""The HTTP tools against real servers: the demo business API, and scripted servers that fail,
flap or hang, all served by uvicorn on free local ports."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.conversation.agent import AgentProfile
from app.conversation.engine import ConversationState, TurnResult
from app.llm.base import ToolCall
from app.settings import Settings
from app.tools.base import ToolContext, ToolOutcome
from app.tools.http import HttpTool
from app.tools.registry import HTTP_TOOL_NAMES, ToolBox
from app.tools.transfer import HandoffNotice, Transfer
from harness.demo_backend import DemoData, create_demo_backend
from harness.serving import serving
from tests import factories

pytestmark = pytest.mark.integration

TODAY = date(2030, 5, 13)
TOMORROW = (TODAY + timedelta(days=1)).isoformat()
KEY = "demo-secret"
CTX = ToolContext(
    org_id="org-1",
    agent_id="agent-1",
    conversation_id="conv-1",
    call_sid="CA0001",
    caller_number="+15550199",
)
AGENT = AgentProfile(id="agent-1", name="Desk", system_prompt="Be brief.", greeting="Hi!")


def make_settings(**values: Any) -> Settings:
    """Settings with every tool URL and key unset unless given (the environment cannot leak in);
    the deployment's URLs serve CTX's org, and agents' own URLs may be the local fakes."""
    fields: dict[str, Any] = {
        f"{prefix}_api_{kind}": None
        for prefix in ("order", "inventory", "calendar", "crm", "handoff")
        for kind in ("url", "key")
    }
    fields.update(tool_timeout_s=2.0, tool_retries=2)
    fields.update(velox_tool_url_orgs="org-1", velox_allow_private_tool_urls=True)
    fields.update(values)
    return factories.settings(**fields)


def all_tools(url: str, key: str | None = KEY, **values: Any) -> Settings:
    shared: dict[str, Any] = {}
    for prefix in ("order", "inventory", "calendar", "crm", "handoff"):
        shared[f"{prefix}_api_url"] = url
        shared[f"{prefix}_api_key"] = key
    return make_settings(**shared, **values)


async def run(tools: ToolBox, call: ToolCall, ctx: ToolContext = CTX) -> ToolOutcome:
    """Run `call` as the engine does (an HTTP tool reads nothing of the turn but the call)."""
    return await tools.run(call, ctx, ConversationState.start(AGENT), TurnResult())


def handoff_notice(tools: ToolBox) -> HandoffNotice:
    transfer = tools.tools["transfer_to_agent"]
    assert isinstance(transfer, Transfer)
    return transfer.notice


class TickingClock:
    """A clock for the tools that moves on by `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 100.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@dataclass
class Backoff:
    """Stands in for asyncio.sleep between attempts: keeps each wait, and waits for none."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@dataclass
class Demo:
    url: str
    data: DemoData
    tools: ToolBox

    async def call(self, tool: str, ctx: ToolContext = CTX, /, **arguments: Any) -> ToolOutcome:
        return await run(self.tools, ToolCall(tool, arguments), ctx)


@pytest.fixture
async def demo() -> AsyncIterator[Demo]:
    app = create_demo_backend(api_key=KEY, today=TODAY)
    with serving(app) as url:
        tools = ToolBox(all_tools(url), clock=TickingClock(0.25))
        try:
            yield Demo(url, app.state.data, tools)
        finally:
            await tools.aclose()


@dataclass
class Scripted:
    """A server that answers each request with the next scripted status (then `default`) and
    keeps what it was sent. "hang" never answers in time."""

    script: list[int | str] = field(default_factory=list)
    default: int | str = 200
    seen: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = await request.body()
            self.seen.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": dict(request.query_params),
                    "headers": dict(request.headers),
                    "body": body.decode(),
                }
            )
            step = self.script.pop(0) if self.script else self.default
            if step == "hang":
                await asyncio.sleep(5)
                return Response(status_code=204)
            status = int(step)
            if status >= 400:
                return JSONResponse({"error": f"scripted {status}"}, status_code=status)
            if request.method == "POST":
                payload = {"appointment_id": "APT-9", "date": TOMORROW, "time": "11:00"}
                return JSONResponse({**payload, "status": "confirmed"}, status_code=201)
            return JSONResponse({"order_id": "A1042", "status": "shipped", "items": []})

        paths = ["/orders/{order_id}", "/appointments", "/stock", "/customers", "/handoffs"]
        return Starlette(routes=[Route(p, handle, methods=["GET", "POST"]) for p in paths])


@contextmanager
def scripted(*script: int | str, default: int | str = 200) -> Iterator[tuple[Scripted, str]]:
    server = Scripted(list(script), default)
    with serving(server.app()) as url:
        yield server, url


ORDER = ToolCall("check_order_status", {"order_id": "A1042"})
BOOKING = ToolCall("book_appointment", {"name": "Ann", "date": TOMORROW, "time": "11:00"})


# --- the demo business API --------------------------------------------------------------


async def test_order_found(demo: Demo) -> None:
    outcome = await demo.call("check_order_status", order_id="a 1042")
    assert outcome.ok and outcome.spoken_fallback is None and outcome.error is None
    assert outcome.arguments == {"order_id": "A1042"}
    assert outcome.result["found"] is True
    assert outcome.result["status"] == "shipped"
    assert outcome.result["eta"] == TOMORROW
    assert outcome.result["tracking_number"]
    assert outcome.result["items"][0]["sku"] == "CR-200"
    assert outcome.latency_s == 0.25  # read when the run began and when its answer came


async def test_order_not_found_is_an_answer_not_a_failure(demo: Demo) -> None:
    outcome = await demo.call("check_order_status", order_id="Z9999")
    assert outcome.ok
    assert outcome.result == {"found": False, "order_id": "Z9999"}
    assert outcome.told == "I couldn't find order Z9999. Could you check the number for me?"


@pytest.mark.parametrize(
    ("asked", "sku", "in_stock"),
    [
        ("croissants", "CR-200", True),
        ("CR-210 croissant", "CR-210", True),
        ("bagels", "BG-310", False),
    ],
)
async def test_stock_by_name_or_sku(demo: Demo, asked: str, sku: str, in_stock: bool) -> None:
    outcome = await demo.call("check_item_stock", item=asked)
    assert outcome.ok and outcome.result["found"]
    assert outcome.result["sku"] == sku
    assert outcome.result["in_stock"] is in_stock
    if not in_stock:
        assert outcome.result["quantity"] == 0 and outcome.result["restock_date"] == TOMORROW


async def test_stock_not_found(demo: Demo) -> None:
    outcome = await demo.call("check_item_stock", item="baguette")
    assert outcome.ok and outcome.result == {"found": False, "item": "baguette"}


async def test_booking_is_confirmed_once_even_when_repeated(demo: Demo) -> None:
    before = len(demo.data.appointments)
    first = await demo.call("book_appointment", name="Ann", date=TOMORROW, time="2:30 pm")
    assert first.ok
    assert first.result == {
        "booked": True,
        "appointment_id": first.result["appointment_id"],
        "date": TOMORROW,
        "time": "14:30",
        "status": "confirmed",
    }
    assert first.told == f"You're booked in for {TOMORROW} at 14:30. See you then!"
    # The model calls the tool again with the same arguments: the same booking comes back.
    again = await demo.call("book_appointment", name="Ann", date=TOMORROW, time="14:30")
    assert again.result == first.result
    assert len(demo.data.appointments) == before + 1
    # Another call may book the same arguments (and is then told the slot is taken).
    other = ToolContext("org-1", "agent-1", "conv-2", "CA0002", "+14155550123")
    taken = await demo.call("book_appointment", other, name="Ann", date=TOMORROW, time="14:30")
    assert taken.ok and taken.result["booked"] is False


async def test_slot_taken_offers_alternatives(demo: Demo) -> None:
    outcome = await demo.call("book_appointment", name="Bo", date=TOMORROW, time="10:00")
    assert outcome.ok, "a taken slot is an answer the model can offer alternatives from"
    assert outcome.result == {
        "booked": False,
        "reason": "slot_taken",
        "date": TOMORROW,
        "time": "10:00",
        "alternatives": ["09:00", "09:30", "11:00"],
    }
    assert outcome.told == (
        f"Sorry, {TOMORROW} at 10:00 was just taken, but I have 09:00, 09:30 or 11:00. "
        "Which suits you?"
    )
    closed = await demo.call("book_appointment", name="Bo", date=TOMORROW, time="20:00")
    assert closed.ok and closed.result["reason"] == "outside_hours"
    assert closed.result["alternatives"] == ["15:30", "16:00", "16:30"]


async def test_booking_in_the_past_is_rejected_with_the_reason(demo: Demo) -> None:
    past = (TODAY - timedelta(days=1)).isoformat()
    outcome = await demo.call("book_appointment", name="Bo", date=past, time="10:00")
    assert not outcome.ok
    assert "date_in_past" in outcome.result["error"]
    assert outcome.spoken_fallback == "I couldn't book that appointment."


async def test_customer_profile_defaults_to_the_caller(demo: Demo) -> None:
    outcome = await demo.call("get_customer_profile")
    assert outcome.ok and outcome.result["found"]
    assert outcome.result["name"] == "Maria Lopez"
    assert outcome.result["open_orders"] == ["A1042"]
    other = await demo.call("get_customer_profile", phone="(415) 555-0123")
    assert other.result["name"] == "James Chen"
    stranger = await demo.call("get_customer_profile", phone="+15557770000")
    assert stranger.ok and stranger.result == {"found": False, "phone": "+15557770000"}


async def test_withheld_caller_number_asks_for_one_without_http() -> None:
    with scripted() as (server, url):
        tools = ToolBox(make_settings(crm_api_url=url))
        ctx = ToolContext("org-1", "agent-1", "conv-1", "CA1", "Anonymous")
        outcome = await run(tools, ToolCall("get_customer_profile", {}), ctx)
        await tools.aclose()
    assert not outcome.ok and "missing phone" in outcome.result["error"]
    assert outcome.spoken_fallback == "Could you tell me the phone number on your account?"
    assert server.seen == []


async def test_handoff_is_recorded(demo: Demo) -> None:
    transcript = [
        {"role": "user", "text": "I want to speak to a person."},
        {"role": "assistant", "text": "Of course, transferring you now."},
    ]
    outcome = await handoff_notice(demo.tools).send(
        CTX, reason="asked for a person", summary="Order A1042 is late", transcript=transcript
    )
    assert outcome.ok and outcome.result == {"notified": True, "handoff_id": "H-0001"}
    (recorded,) = demo.data.handoffs
    assert recorded["call_sid"] == "CA0001" and recorded["caller"] == "+15550199"
    assert recorded["summary"] == "Order A1042 is late"
    assert recorded["transcript"] == transcript


async def test_wrong_or_missing_key_is_a_failure(
    demo: Demo, caplog: pytest.LogCaptureFixture
) -> None:
    async with ToolBox(all_tools(demo.url, key=None)) as keyless:
        outcome = await run(keyless, ORDER)
    assert not outcome.ok
    assert outcome.result == {"error": "the order system did not answer"}
    assert "refused our credentials (HTTP 401)" in caplog.text
    assert outcome.spoken_fallback == "I can't reach our order system right now."


# --- scripted servers: headers, retries, timeouts -----------------------------------------


async def test_invalid_arguments_never_reach_the_server() -> None:
    with scripted() as (server, url):
        async with ToolBox(make_settings(calendar_api_url=url, order_api_url=url)) as tools:
            booking = await run(
                tools, ToolCall("book_appointment", {"name": "Ann", "time": "25:00"})
            )
            order = await run(tools, ToolCall("check_order_status", {"order_id": ""}))
    assert not booking.ok and not order.ok
    assert "missing date" in booking.result["error"]
    assert "time is not valid" in booking.result["error"]
    assert booking.spoken_fallback == "I need your name, a day and a time to book that."
    assert order.spoken_fallback == "Could you tell me your order number?"
    assert server.seen == []


async def test_bearer_key_and_idempotency_key_are_sent() -> None:
    with scripted() as (server, url):
        settings = make_settings(
            order_api_url=url, order_api_key="k-order", calendar_api_url=url + "/"
        )
        async with ToolBox(settings) as tools:
            assert (await run(tools, ORDER)).ok
            assert (await run(tools, BOOKING)).ok
    get, post = server.seen
    assert get["headers"]["authorization"] == "Bearer k-order"
    assert "idempotency-key" not in get["headers"]
    assert "authorization" not in post["headers"]  # no CALENDAR_API_KEY
    assert post["headers"]["idempotency-key"].startswith("velox-")
    assert post["path"] == "/appointments"


async def test_agent_url_override_wins_and_never_gets_the_platform_key() -> None:
    with scripted() as (platform, platform_url), scripted() as (agents, agent_url):
        settings = make_settings(order_api_url=platform_url, order_api_key="k-order")
        async with ToolBox(settings) as tools:
            ctx = ToolContext(
                "org-1", "agent-1", "c", "CA", None, {"check_order_status": agent_url}
            )
            assert (await run(tools, ORDER, ctx)).ok
    assert platform.seen == []
    (request,) = agents.seen
    assert "authorization" not in request["headers"]


async def test_503_then_200_is_retried() -> None:
    with scripted(503, 503) as (server, url):
        async with ToolBox(make_settings(order_api_url=url)) as tools:
            outcome = await run(tools, ORDER)
    assert outcome.ok and outcome.result["found"]
    assert len(server.seen) == 3


async def test_post_retried_after_500_with_the_same_idempotency_key() -> None:
    with scripted(500) as (server, url):
        async with ToolBox(make_settings(calendar_api_url=url)) as tools:
            outcome = await run(tools, BOOKING)
    assert outcome.ok and outcome.result["booked"]
    first, second = server.seen
    assert first["headers"]["idempotency-key"] == second["headers"]["idempotency-key"]
    assert first["body"] == second["body"]


async def test_retries_give_up_with_a_spoken_fallback(caplog: pytest.LogCaptureFixture) -> None:
    backoff = Backoff()
    with scripted(default=503) as (server, url):
        settings = make_settings(order_api_url=url, tool_retries=2)
        async with ToolBox(settings, sleep=backoff) as tools:
            outcome = await run(tools, ORDER)
    assert not outcome.ok
    assert outcome.result == {"error": "the order system did not answer"}
    assert outcome.error == outcome.result["error"]
    assert "unavailable (HTTP 503)" in caplog.text
    assert outcome.spoken_fallback == "I can't reach our order system right now."
    assert len(server.seen) == 3
    assert backoff.waits == [0.1, 0.2]


@pytest.mark.parametrize("status", [400, 422])
async def test_client_errors_are_not_retried(status: int, caplog: pytest.LogCaptureFixture) -> None:
    with scripted(default=status) as (server, url):
        async with ToolBox(make_settings(order_api_url=url)) as tools:
            outcome = await run(tools, ORDER)
    assert not outcome.ok
    # "scripted 400" is free text, not an error code: only the log has it.
    assert outcome.result == {"error": "the order system rejected the request"}
    assert f"HTTP {status}): scripted {status}" in caplog.text
    assert outcome.spoken_fallback == "I couldn't look up that order just now."
    assert len(server.seen) == 1


async def test_hanging_server_times_out_within_the_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backoff = Backoff()
    with scripted(default="hang") as (server, url):
        settings = make_settings(order_api_url=url, tool_timeout_s=0.5, tool_retries=2)
        async with ToolBox(settings, sleep=backoff) as tools:
            outcome = await run(tools, ORDER)
    assert not outcome.ok
    assert outcome.result == {"error": "the order system did not answer"}
    assert "no answer within 0.5 s" in caplog.text
    assert outcome.spoken_fallback == "I can't reach our order system right now."
    # The first attempt spent the whole budget: the two retries it allowed never started.
    assert len(server.seen) == 1 and backoff.waits == [], "the budget covers every attempt"


async def test_unreachable_server_is_a_failure_not_an_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nothing listens there now
    async with ToolBox(make_settings(order_api_url=url, handoff_api_url=url)) as tools:
        outcome = await run(tools, ORDER)
        handoff = await handoff_notice(tools).send(CTX, reason="r", summary="s", transcript=[])
    assert not outcome.ok and outcome.result == {"error": "the order system did not answer"}
    assert "is unreachable (ConnectError" in caplog.text
    assert outcome.spoken_fallback == "I can't reach our order system right now."
    assert not handoff.ok and handoff.spoken_fallback


async def test_unknown_or_unconfigured_tools_are_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="app.tools.http")
    async with ToolBox(make_settings()) as tools:
        unknown = await run(tools, ToolCall("launch_rocket", {}))
        unset = await run(tools, ORDER)
    assert not unknown.ok and unknown.spoken_fallback
    assert not unset.ok and unset.result == {"error": "the order system is not set up"}
    assert "ORDER_API_URL is not set" in caplog.text


async def test_tools_without_urls_are_not_offered_and_overrides_count() -> None:
    async with ToolBox(make_settings(order_api_url="http://orders.test/")) as tools:
        names = ("end_call", "check_order_status", "book_appointment", "check_item_stock")
        agent = AgentProfile(id="a", name="Desk", system_prompt="x", greeting="Hi", tools=names)
        offered = [spec.name for spec in tools.specs(ConversationState.start(agent))]
        assert offered == ["end_call", "check_order_status"]
        assert tools.configured() & set(HTTP_TOOL_NAMES) == {"check_order_status"}
        overrides = {"book_appointment": "https://cal.test", "handoff": "https://team.test"}
        own_urls = ConversationState.start(replace(agent, tool_urls=overrides))
        offered = [spec.name for spec in tools.specs(own_urls)]
        assert offered == ["end_call", "check_order_status", "book_appointment"]
        order = tools.tools["check_order_status"]
        assert isinstance(order, HttpTool)
        assert order.base_url() == "http://orders.test"
        assert order.base_url({"check_order_status": "http://o2"}) == "http://o2"
        assert handoff_notice(tools).base_url() is None
        assert handoff_notice(tools).base_url(overrides) == "https://team.test"
        # An agent's URL that breaks the rules (http to another host) is not offered.
        plain_http = ConversationState.start(
            replace(agent, tool_urls={"book_appointment": "http://cal.test"})
        )
        assert "book_appointment" not in [spec.name for spec in tools.specs(plain_http)]
        assert not isinstance(tools.tools["end_call"], HttpTool)  # it has no URL to have
