"""`GET /api/calls/live`: the organization's calls in progress, from the shared Redis store."""

from __future__ import annotations

import time

import pytest

from app.call_state.store import LiveCall
from app.services import Services
from tests.api.conftest import Tenant

pytestmark = pytest.mark.integration


async def test_lists_the_orgs_live_calls_newest_first(org_a: Tenant, services: Services) -> None:
    org = str(org_a.org_id)
    now = time.time()
    for sid, started in (("CA-old", now - 60), ("CA-new", now)):
        await services.calls.put(
            LiveCall(sid, org, "agent-1", "replica-2", "+1555", "+1556", started)
        )
    await services.calls.update("CA-new", org, turns=2, last_caller_text="Are you open?")
    items = (await org_a.client.get("/api/calls/live")).json()["items"]
    assert [c["call_sid"] for c in items] == ["CA-new", "CA-old"]
    assert items[0]["turns"] == 2 and items[0]["last_caller_text"] == "Are you open?"
    assert "replica" not in items[0]  # internal placement stays internal
