"""An agent's tool URLs through the API: only https URLs to public hosts, without credentials,
query or fragment, are saved (a 422 names the field); in development, http to this machine too.
A tool that fails shows the tenant a generic error, never our network's details."""

from __future__ import annotations

from typing import Any

import pytest

from app.llm.base import ToolCall
from app.services import Services
from app.settings import Settings
from tests.api.conftest import Tenant, agent_body, assert_error
from tests.fakes import FakeLLM

pytestmark = pytest.mark.integration

FIELD = "body.tool_settings.urls.check_order_status"


def with_urls(**urls: str) -> dict[str, Any]:
    return agent_body(tools=["check_order_status"], tool_settings={"urls": urls})


def field_errors(error: dict[str, object]) -> dict[str, str]:
    fields = error["fields"]
    assert isinstance(fields, list)
    return {f["field"]: f["message"] for f in fields}


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:8100", "loopback"),
        ("https://127.0.0.1/api", "loopback"),
        ("http://2130706433/", "loopback"),
        ("https://0177.0.0.1/", "loopback"),
        ("https://[::ffff:127.0.0.1]/", "loopback"),
        ("https://localhost./api", "loopback"),
        ("https://10.1.2.3/", "private"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://metadata.google.internal/", "metadata"),
        ("http://orders.example.com", "https"),
        ("https://user:pw@orders.example.com", "user name or password"),
        ("https://orders.example.com/api?q=1", "query"),
        ("https://orders.example.com/api#f", "fragment"),
        ("ftp://orders.example.com", "http"),
    ],
)
async def test_unsafe_tool_urls_are_422_with_the_field(
    org_a: Tenant, url: str, problem: str
) -> None:
    created = await org_a.client.post("/api/agents", json=with_urls(check_order_status=url))
    error = assert_error(created, 422, "invalid_request")
    message = field_errors(error)[FIELD]
    assert problem in message.lower(), message
    assert (await org_a.client.get("/api/agents")).json()["items"] == []


async def test_every_way_to_save_urls_is_checked(org_a: Tenant) -> None:
    created = await org_a.client.post(
        "/api/agents", json=with_urls(check_order_status="https://orders.example.com/api")
    )
    assert created.status_code == 201, created.text
    agent = created.json()["id"]
    bad = {"urls": {"check_order_status": "http://127.0.0.1:8100", "handoff": "https://a@b.io"}}
    patched = await org_a.client.patch(f"/api/agents/{agent}", json={"tool_settings": bad})
    errors = field_errors(assert_error(patched, 422, "invalid_request"))
    assert set(errors) == {FIELD, "body.tool_settings.urls.handoff"}
    replaced = await org_a.client.put(f"/api/agents/{agent}", json=agent_body(tool_settings=bad))
    assert FIELD in field_errors(assert_error(replaced, 422, "invalid_request"))
    kept = (await org_a.client.get(f"/api/agents/{agent}")).json()
    assert kept["tool_settings"]["urls"] == {"check_order_status": "https://orders.example.com/api"}


class TestDevelopment:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.replace(velox_allow_private_tool_urls=True)

    async def test_http_to_this_machine_is_allowed_but_metadata_never(self, org_a: Tenant) -> None:
        local = await org_a.client.post(
            "/api/agents", json=with_urls(check_order_status="http://127.0.0.1:9")
        )
        assert local.status_code == 201, local.text
        for url in ("http://169.254.169.254/", "http://orders.example.com/"):
            body = with_urls(check_order_status=url) | {"name": url}
            refused = await org_a.client.post("/api/agents", json=body)
            assert FIELD in field_errors(assert_error(refused, 422, "invalid_request"))

    async def test_a_failing_tool_shows_the_tenant_a_generic_error(
        self, org_a: Tenant, services: Services
    ) -> None:
        llm = services.engines.llm
        assert isinstance(llm, FakeLLM)
        llm.replies = [ToolCall("check_order_status", {"order_id": "A1042"}), "Sorry."]
        # Nothing listens on the discard port.
        created = await org_a.client.post(
            "/api/agents", json=with_urls(check_order_status="http://127.0.0.1:9")
        )
        agent = created.json()["id"]
        chat = await org_a.client.post(
            "/api/playground/chat", json={"agent_id": agent, "message": "Where is A1042?"}
        )
        assert chat.status_code == 200, chat.text
        (run,) = chat.json()["tool_calls"]
        assert run["ok"] is False
        assert run["result"] == {"error": "the order system did not answer"}
        assert run["error"] == "the order system did not answer"
        stored = await org_a.client.get(f"/api/conversations/{chat.json()['conversation_id']}")
        assert "127.0.0.1" not in stored.text and "ConnectError" not in stored.text
