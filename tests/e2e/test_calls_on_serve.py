"""Whole phone calls against the real Ray Serve app with the real local models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from app.db.database import Database
from app.db.models import Conversation, Message
from harness.simulator.caller import CallerTurn, CallSetupError, open_stream, place_call
from harness.simulator.script import run_scripted_call, speak_lines, transcribe_mulaw
from tests.conversations import load_call
from tests.e2e.conftest import CALLER_PATIENCE_S, TWILIO_TOKEN

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def metric_lines(url: str, prefix: str, contains: str, wait_s: float = 40) -> list[str]:
    """Lines of /metrics starting with `prefix` and containing `contains`, once Ray exports them
    (application metrics reach the node's metrics port every few seconds)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    async with httpx.AsyncClient() as client:
        while True:
            text = (await client.get(f"{url}/metrics")).text
            lines = [ln for ln in text.splitlines() if ln.startswith(prefix) and contains in ln]
            if lines or asyncio.get_running_loop().time() > deadline:
                return lines
            await asyncio.sleep(1)


async def saved_call(postgres_url: str, call_sid: str) -> tuple[Conversation, list[Message]]:
    """The conversation and messages the server wrote to Postgres while the call happened."""
    db = Database(postgres_url, pool_size=1)
    try:
        convo, messages = await load_call(db, call_sid)
    finally:
        await db.close()
    assert convo is not None, f"no conversation for {call_sid}"
    return convo, messages


async def test_two_turn_call_gets_relevant_spoken_answers(
    serve_url, speech_engines, tmp_path, postgres_url
):
    tts, stt = speech_engines
    report = await run_scripted_call(
        serve_url,
        lines=["Hi, what time do you open on Saturday?", "Thanks. Where can I park my car?"],
        auth_token=TWILIO_TOKEN,
        patience_s=CALLER_PATIENCE_S,
        save_dir=tmp_path,
        tts=tts,
        stt=stt,
    )
    result = report.result
    assert not result.violations and not report.failed
    assert result.greeting_latency_s is not None
    assert "bakery" in report.greeting_text.lower()
    first, second = (line.lower() for line in report.agent_lines)
    assert "7" in first or "seven" in first, first
    assert "park" in second or "behind" in second, second
    assert all(t.voice_to_voice_s and t.voice_to_voice_s > 0 for t in result.turns)
    assert Path(report.json_path).exists() and (tmp_path / report.json_path.parent).exists()

    # The server wrote each turn as it ended, with the stage timings.
    convo, messages = await saved_call(postgres_url, result.call_sid)
    assert convo.status == "completed" and convo.duration_s and convo.duration_s > 0
    assert convo.cost["billed_minutes"] >= 1 and convo.cost["total"] > 0
    assert convo.sentiment is not None and convo.latency["turns"] == 3
    assert [m.role for m in messages] == ["agent", "caller", "agent", "caller", "agent"]
    assert "bakery" in messages[0].text.lower()
    # The first question, as heard: Whisper tiny.en hears Piper's "Saturday" as "setter day" in
    # some renderings (Piper varies each one), so the turn is told by its other words. How well
    # each voice is heard is the benchmarks' to measure (bench/engines.py).
    assert "what time do you open" in messages[1].text.lower()
    assert set(messages[2].latency) >= {
        "stt_s",
        "llm_ttft_s",
        "tts_ttfb_s",
        "voice_to_voice_s",
        "end_of_turn_s",
    }


async def test_caller_interrupting_the_greeting_is_heard_and_answered(
    serve_url, speech_engines, postgres_url
):
    tts, stt = speech_engines
    (audio,) = await speak_lines(tts, ["Where can I park?"])
    result = await place_call(
        serve_url,
        [CallerTurn(audio_pcm16_8k=audio, text="Where can I park?", barge_in_after_s=1.0)],
        auth_token=TWILIO_TOKEN,
    )
    (turn,) = result.turns
    assert turn.clear_at is not None, "the server cleared the greeting"
    assert turn.barge_in_stop_s is not None and turn.barge_in_stop_s > 0
    reply = (await transcribe_mulaw(stt, turn.reply_audio)).lower()
    assert "park" in reply or "behind" in reply, reply
    _, messages = await saved_call(postgres_url, result.call_sid)
    greeting = messages[0]
    assert greeting.role == "agent" and greeting.interrupted
    assert greeting.intended_text and len(greeting.text) < len(greeting.intended_text)


async def test_a_broken_call_does_not_disturb_a_concurrent_one(serve_url, speech_engines):
    tts, stt = speech_engines
    (audio,) = await speak_lines(tts, ["What time do you close today?"])
    good = asyncio.create_task(
        place_call(
            serve_url, [CallerTurn(audio_pcm16_8k=audio, text="close?")], auth_token=TWILIO_TOKEN
        )
    )
    broken = await open_stream(serve_url, auth_token=TWILIO_TOKEN)
    await broken.wait_for("media", 10)  # its greeting started: the call is live
    await broken.send_text("{this is not json")
    while await broken.recv(5) is not None:
        pass
    assert broken.close_code == 1008
    result = await good
    reply = (await transcribe_mulaw(stt, result.turns[0].reply_audio)).lower()
    assert "6" in reply or "six" in reply, reply
    failed = await metric_lines(serve_url, "velox_calls_total{", 'status="failed"')
    assert failed and float(failed[0].rsplit(" ", 1)[1]) >= 1


async def test_bad_signature_is_refused_with_a_clear_message(serve_url):
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{serve_url}/voice/incoming",
            data={"CallSid": "CA" + "0" * 32, "From": "+15550199", "To": "+15550100"},
            headers={"X-Twilio-Signature": "forged"},
        )
    assert response.status_code == 403
    assert "X-Twilio-Signature" in response.json()["error"]["message"]
    with pytest.raises(CallSetupError):
        await open_stream(serve_url, auth_token="not-the-token")


async def test_health_and_metrics_cover_the_node(serve_url):
    health = httpx.get(f"{serve_url}/health").json()
    assert health["status"] == "ok"
    assert health["twilio_signature_validation"] is True
    await metric_lines(serve_url, "velox_stt_latency_seconds_count", "")
    metrics = httpx.get(f"{serve_url}/metrics").text
    assert 'deployment="ingress"' in metrics, "series come from Ray's node metrics, per replica"
    for name in (
        "velox_calls_total",
        "velox_active_calls",
        "velox_llm_latency_seconds",
        "velox_tts_latency_seconds",
        "velox_e2e_latency_seconds",
        "velox_stt_latency_seconds",
    ):
        assert name in metrics
