"""What the HTTP tools share: the settings each reads, and idempotency keys."""

from __future__ import annotations

from typing import Any

from app.settings import env_names
from app.tools.base import ToolContext
from app.tools.http import HttpTool, idempotency_key
from app.tools.registry import HTTP_TOOL_NAMES, TOOL_NAMES, ToolBox
from app.tools.transfer import Transfer
from tests import factories

PREFIXES = ("order", "inventory", "calendar", "crm", "handoff")


def test_every_http_tool_reads_its_own_url_and_key_settings() -> None:
    assert set(HTTP_TOOL_NAMES) <= set(TOOL_NAMES)
    assert set(HTTP_TOOL_NAMES) == {
        "check_order_status",
        "check_item_stock",
        "book_appointment",
        "get_customer_profile",
    }
    values: dict[str, Any] = {}
    for prefix in PREFIXES:
        assert f"{prefix}_API_URL".upper() in env_names()
        assert f"{prefix}_API_KEY".upper() in env_names()
        values[f"{prefix}_api_url"] = f"http://{prefix}.test"
        values[f"{prefix}_api_key"] = f"key-{prefix}"
    box = ToolBox(factories.settings(**values))
    transfer = box.tools["transfer_to_agent"]
    assert isinstance(transfer, Transfer)
    backends = [box.tools[name].backend() for name in HTTP_TOOL_NAMES]  # type: ignore[attr-defined]
    backends.append(transfer.notice.backend())
    for backend in backends:
        # The variable an error names when the URL is unset is the one the URL comes from.
        prefix = backend.url_setting.removesuffix("_API_URL").lower()
        assert backend.url == f"http://{prefix}.test"
        assert backend.key is not None and backend.key.get_secret_value() == f"key-{prefix}"
    assert sorted(b.url_setting for b in backends) == sorted(
        f"{p.upper()}_API_URL" for p in PREFIXES
    )
    assert all(isinstance(box.tools[name], HttpTool) for name in HTTP_TOOL_NAMES)


def test_idempotency_key_is_the_same_for_the_same_request_in_the_same_call() -> None:
    ctx = ToolContext("org", "agent", "conv", "CA1", "+15550199")
    other_call = ToolContext("org", "agent", "conv2", "CA2", "+15550199")
    args = {"name": "Ann", "date": "2030-05-14", "time": "14:30"}
    key = idempotency_key(ctx, "book_appointment", args)
    assert key == idempotency_key(ctx, "book_appointment", dict(reversed(args.items())))
    assert key != idempotency_key(ctx, "book_appointment", {**args, "time": "15:00"})
    assert key != idempotency_key(other_call, "book_appointment", args)
    anonymous = ToolContext("org", "agent", None, None, None)
    assert idempotency_key(anonymous, "x", args) != idempotency_key(anonymous, "x", args)
