"""Media Streams fuzzed beside a live good call, on the real Serve app: malformed JSON, wrong
types, huge payloads, out-of-order events and binary frames, on streams with and without the
webhook's token. The good call completes with its transcript intact, nothing answers 5xx, and
the ingress replica that served it is the one still serving afterwards."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.simulator.caller import CallerTurn, CallSetupError, RawStream, open_stream, place_call
from harness.simulator.script import speak_lines
from tests.e2e.conftest import TWILIO_TOKEN
from tests.e2e.test_calls_on_serve import saved_call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FUZZ_ROUNDS = int(os.environ.get("FUZZ_ROUNDS", "3"))
EVENTS = ["connected", "start", "media", "dtmf", "mark", "stop", "clear", "unknown", ""]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def _message(event: str, body: Any, sequence: Any) -> str:
    return json.dumps(
        {"event": event, "sequenceNumber": sequence, "streamSid": "MZ" + "0" * 32, event: body}
    )


frames = st.one_of(
    st.text(max_size=300),  # anything, mostly not JSON
    st.binary(max_size=300),  # binary frames: not part of the protocol
    json_values.map(json.dumps),  # JSON of the wrong shape
    st.builds(
        _message, st.sampled_from(EVENTS), json_values, json_values
    ),  # right keys, wrong types
    st.builds(  # media whose payload is not base64, or not mu-law 20 ms, or huge
        lambda payload: _message("media", {"track": "inbound", "payload": payload}, "2"),
        st.one_of(
            st.text(max_size=50),
            st.binary(min_size=0, max_size=2000).map(lambda b: base64.b64encode(b).decode()),
            st.just("A" * (70 * 1024)),
        ),
    ),
)

sessions = st.tuples(
    st.booleans(),  # bring the webhook's token and a proper start first
    st.lists(frames, min_size=1, max_size=12),
)


async def _fuzz(base_url: str, with_token: bool, sent: list[str | bytes]) -> None:
    try:
        stream: RawStream = await open_stream(
            base_url, auth_token=TWILIO_TOKEN, via_webhook=with_token, send_start=with_token
        )
    except CallSetupError as refused:
        assert refused.status_code is None or refused.status_code < 500, refused
        return
    try:
        for frame in sent:
            await stream.ws.send(frame)
            if stream.close_code is not None:
                break
        while await stream.recv(1) is not None:
            pass
    except Exception:  # the server closing on us mid-send is what a fuzzed stream should get
        pass
    finally:
        await stream.close()


async def _health(base_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base_url}/health")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


@settings(
    max_examples=FUZZ_ROUNDS, deadline=None, suppress_health_check=list(HealthCheck), database=None
)
@given(batch=st.lists(sessions, min_size=6, max_size=6))
def test_fuzzed_streams_leave_a_live_call_and_the_replica_alone(
    serve_url: str, speech_engines: Any, postgres_url: str, batch: list[tuple[bool, list[Any]]]
) -> None:
    asyncio.run(_round(serve_url, speech_engines, postgres_url, batch))


async def _round(
    serve_url: str, speech_engines: Any, postgres_url: str, batch: list[tuple[bool, list[Any]]]
) -> None:
    tts, _ = speech_engines
    before = await _health(serve_url)
    (audio,) = await speak_lines(tts, ["What time do you close today?"])
    good = asyncio.create_task(
        place_call(
            serve_url, [CallerTurn(audio_pcm16_8k=audio, text="close?")], auth_token=TWILIO_TOKEN
        )
    )
    await asyncio.gather(*(_fuzz(serve_url, token, sent) for token, sent in batch))
    result = await good
    assert not result.rejected and not any(t.timed_out for t in result.turns)
    # The call's end is written just after the caller hangs up: give the write a moment.
    for _ in range(50):
        convo, messages = await saved_call(postgres_url, result.call_sid)
        if convo.status != "in_progress":
            break
        await asyncio.sleep(0.2)
    assert convo.status == "completed"
    assert [m.role for m in messages] == ["agent", "caller", "agent"]
    assert "close" in messages[1].text.lower()
    after = await _health(serve_url)
    assert after["replica"] == before["replica"], "the ingress replica was restarted"
