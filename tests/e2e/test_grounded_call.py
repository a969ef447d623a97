"""A business uploads its policy, and the agent answers a caller from it mid-call: the API,
the embedder deployment, ingestion, hybrid search and the call loop on the real Serve app."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.db.organizations import create_org_with_key
from harness.simulator.script import run_scripted_call
from tests import factories
from tests.e2e.conftest import CALLER_PATIENCE_S, TWILIO_TOKEN
from tests.e2e.test_calls_on_serve import saved_call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POLICY = """# Acme Plumbing policies

## Returns
Unused spare parts can be returned within 45 days for a full refund.

## Call-out fee
An emergency call-out costs 90 dollars, and the first half hour of work is included.
"""


async def test_the_agent_answers_from_an_uploaded_document(
    serve_url, speech_engines, postgres_url, tmp_path
):
    tts, stt = speech_engines
    settings = factories.settings(database_url=postgres_url)
    _, key = await create_org_with_key(settings, "Acme Plumbing", "e2e")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=serve_url, headers=headers, timeout=30) as api:
        upload = await api.post(
            "/api/documents/upload",
            files={"file": ("policies.md", POLICY.encode(), "text/markdown")},
        )
        assert upload.status_code == 202, upload.text
        document = upload.json()
        deadline = time.monotonic() + 60
        while document["status"] not in ("ready", "failed") and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            document = (await api.get(f"/api/documents/{document['id']}")).json()
        assert document["status"] == "ready", document
        agent = (
            await api.post(
                "/api/agents",
                json={
                    "name": "Front desk",
                    "system_prompt": "You answer the phone for Acme Plumbing. "
                    "Reply in one short spoken sentence.",
                    "greeting": "Acme Plumbing, how can I help?",
                    "knowledge_base_id": document["knowledge_base_id"],
                },
            )
        ).json()
        number = await api.post(
            "/api/phone-numbers", json={"number": "+14155550777", "agent_id": agent["id"]}
        )
        assert number.status_code == 201, number.text

    report = await run_scripted_call(
        serve_url,
        lines=["How many days do I have to return a spare part?"],
        to_number="+14155550777",
        auth_token=TWILIO_TOKEN,
        patience_s=CALLER_PATIENCE_S,
        save_dir=tmp_path,
        tts=tts,
        stt=stt,
    )
    assert not report.failed and "plumbing" in report.greeting_text.lower()
    (answer,) = (line.lower() for line in report.agent_lines)
    assert "45" in answer or "forty" in answer, answer

    _, messages = await saved_call(postgres_url, report.result.call_sid)
    citations = messages[-1].citations
    assert citations and citations[0]["document_name"] == "policies.md", messages[-1]
    assert "Returns" in citations[0]["heading"]
