"""The phone side as an attacker finds it: who may place calls, which URL is signed, which stream
may carry which call, and what one stream may cost. Over HTTP and WebSockets, fake engines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from app.api.app import create_app
from app.api.rate_limits import RateLimits
from app.call_state.admission import TOKEN_PARAMETER
from app.calls.config import CallConfig
from app.calls.hub import CallHub
from app.observability.metrics import Metrics
from app.telephony.signature import SignatureVerifier
from app.tools.registry import ToolBox
from harness.simulator.phone import TwilioStream
from tests import factories
from tests.fakes import MemoryRecorder
from tests.unit.api.test_voice_api import PARAMS, PROXY, stream_of

OTHER_CALL = dict(PARAMS, CallSid="CA" + "f" * 32)


class Voice:
    """A database-less replica's voice routes, with what they recorded."""

    def __init__(self, tmp_path: Any, **settings: object) -> None:
        values: dict[str, object] = {"twilio_auth_token": None, "velox_public_url": None}
        self.settings = factories.settings(velox_data_dir=tmp_path, **{**values, **settings})
        engines = factories.engines()
        self.metrics = Metrics()
        self.recorder = MemoryRecorder()
        services = factories.call_services(
            self.settings,
            engines,
            agent=factories.agent(),
            recorder=self.recorder,
            metrics=self.metrics,
        )
        self.hub = CallHub(services, CallConfig.from_settings(self.settings))
        self.app: FastAPI = create_app()
        state = self.app.state
        state.settings, state.engines, state.hub = self.settings, engines, self.hub
        state.metrics, state.toolbox = self.metrics, ToolBox(self.settings)
        state.rate_limits = RateLimits.from_settings(self.settings)

    def client(self, **kwargs: Any) -> TestClient:
        return TestClient(self.app, **kwargs)

    def counter(self, name: str, **labels: str) -> float:
        value = getattr(self.metrics, name).labels(**labels)._value.get()
        return float(value)


def token_of(client: TestClient, params: dict[str, str] = PARAMS) -> str:
    response = client.post("/voice/incoming", data=params)
    assert response.status_code == 200, response.text
    return stream_of(response.text)[1][TOKEN_PARAMETER]


def twilio(params: dict[str, str] = PARAMS, **custom: str) -> TwilioStream:
    return TwilioStream(
        stream_sid="MZ" + "0" * 32,
        call_sid=params["CallSid"],
        account_sid=params["AccountSid"],
        custom_parameters=custom,
    )


def start(ws: WebSocketTestSession, stream: TwilioStream) -> None:
    ws.send_text(json.dumps(stream.connected()))
    ws.send_text(json.dumps(stream.start()))


def closed(ws: WebSocketTestSession) -> tuple[int, str, list[dict[str, Any]]]:
    """Read until the server closes: its code, its reason, and what it sent before."""
    sent: list[dict[str, Any]] = []
    with pytest.raises(WebSocketDisconnect) as end:
        while True:
            sent.append(json.loads(ws.receive_text()))
    return end.value.code, end.value.reason, sent


def first_media(ws: WebSocketTestSession) -> dict[str, Any]:
    """The greeting's first audio: the call was admitted and its agent runs."""
    while True:
        message = json.loads(ws.receive_text())
        if message["event"] == "media":
            return message


def silence(stream: TwilioStream, seconds: float) -> Iterator[str]:
    for _ in range(round(seconds / 0.02)):
        yield json.dumps(stream.media(b"\xff" * 160))


# ----------------------------------------------------------------------------- who may call


def test_a_public_server_without_a_token_serves_no_voice(tmp_path) -> None:
    voice = Voice(tmp_path, velox_host="0.0.0.0")
    client = voice.client()
    response = client.post("/voice/incoming", data=PARAMS)
    assert response.status_code == 503
    assert "TWILIO_AUTH_TOKEN" in response.json()["error"]["message"]
    assert voice.counter("calls_refused_total", reason="voice_off") == 1
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/voice/stream"):
            pass
    assert refused.value.code == 1008


def test_the_development_flag_serves_unsigned_voice_off_loopback(tmp_path) -> None:
    voice = Voice(tmp_path, velox_host="0.0.0.0", velox_insecure_unsigned_voice=True)
    assert voice.client().post("/voice/incoming", data=PARAMS).status_code == 200


def test_a_token_off_loopback_needs_the_public_url(tmp_path) -> None:
    voice = Voice(tmp_path, velox_host="0.0.0.0", twilio_auth_token="secret")
    response = voice.client().post("/voice/incoming", data=PARAMS)
    assert response.status_code == 503
    assert "VELOX_PUBLIC_URL" in response.json()["error"]["message"]


def test_signatures_are_checked_against_the_public_url_not_the_host_header(tmp_path) -> None:
    public = "https://voice.example.com"
    voice = Voice(
        tmp_path, velox_host="0.0.0.0", twilio_auth_token="secret", velox_public_url=public
    )
    client = voice.client()
    signer = SignatureVerifier("secret")
    good = signer.sign(f"{public}/voice/incoming", PARAMS)
    assert (
        client.post(
            "/voice/incoming", data=PARAMS, headers={"X-Twilio-Signature": good}
        ).status_code
        == 200
    )
    # Signed for the Host the attacker sent: not the URL we are reached at.
    spoofed = signer.sign("http://evil.example.com/voice/incoming", PARAMS)
    response = client.post(
        "/voice/incoming",
        data=PARAMS,
        headers={"X-Twilio-Signature": spoofed, "Host": "evil.example.com"},
    )
    assert response.status_code == 403


def test_forwarded_headers_count_only_from_trusted_proxies(tmp_path) -> None:
    voice = Voice(tmp_path, twilio_auth_token="secret")
    signer = SignatureVerifier("secret")
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example.com"}
    signature = signer.sign("https://evil.example.com/voice/incoming", PARAMS)
    headers = {**forwarded, "X-Twilio-Signature": signature}
    assert voice.client().post("/voice/incoming", data=PARAMS, headers=headers).status_code == 403
    # Unsigned (loopback, no token): the stream URL still ignores an untrusted X-Forwarded-Host,
    # so nobody can send Twilio's audio of a call elsewhere.
    open_voice = Voice(tmp_path)
    response = open_voice.client().post("/voice/incoming", data=PARAMS, headers=forwarded)
    assert stream_of(response.text)[0] == "ws://testserver/voice/stream"


def test_behind_trusted_proxies_the_right_most_forwarded_value_counts(tmp_path) -> None:
    voice = Voice(tmp_path, velox_trusted_proxies="10.0.0.0/8")
    headers = {
        "X-Forwarded-Proto": "http, https",
        "X-Forwarded-Host": "evil.com, voice.example.com",
    }
    response = voice.client(client=PROXY).post("/voice/incoming", data=PARAMS, headers=headers)
    assert stream_of(response.text)[0] == "wss://voice.example.com/voice/stream"


def test_an_unknown_forwarded_scheme_is_a_400(tmp_path) -> None:
    voice = Voice(tmp_path, twilio_auth_token="secret", velox_trusted_proxies="10.0.0.0/8")
    response = voice.client(client=PROXY).post(
        "/voice/incoming",
        data=PARAMS,
        headers={"X-Forwarded-Proto": "gopher", "X-Twilio-Signature": "x"},
    )
    assert response.status_code == 400 and "scheme" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "params",
    [
        dict(PARAMS, CallSid="CA1\nINFO forged log line"),
        dict(PARAMS, AccountSid=""),
        dict(PARAMS, To="+1" * 100),
    ],
)
def test_ids_are_checked_before_anything_uses_them(tmp_path, params: dict[str, str]) -> None:
    response = Voice(tmp_path).client().post("/voice/incoming", data=params)
    assert response.status_code == 400


# ----------------------------------------------------------------------------- whose stream


@pytest.mark.parametrize(
    ("custom", "reason"),
    [
        # What the attack used: another org's ids and a made-up call, with no token.
        ({"orgId": "0b1c", "agentId": "default", "callSid": "CA" + "9" * 32}, "no_token"),
        ({TOKEN_PARAMETER: "made-up"}, "bad_token"),
    ],
)
def test_a_stream_without_a_valid_token_never_runs_a_call(
    tmp_path, custom: dict[str, str], reason: str
) -> None:
    voice = Voice(tmp_path)
    with voice.client().websocket_connect("/voice/stream") as ws:
        start(ws, twilio(**custom))
        code, message, sent = closed(ws)
    assert code == 1008 and "stream refused" in message
    assert sent == []  # no greeting: the agent never ran
    assert voice.recorder.started == []  # and nothing was recorded
    assert voice.counter("streams_refused_total", reason=reason) == 1


def test_a_token_works_once_and_only_for_its_own_call(tmp_path) -> None:
    voice = Voice(tmp_path)
    client = voice.client()
    token = token_of(client, OTHER_CALL)
    with client.websocket_connect("/voice/stream") as ws:
        start(ws, twilio(PARAMS, **{TOKEN_PARAMETER: token}))  # OTHER_CALL's token
        assert closed(ws)[0] == 1008
    assert voice.counter("streams_refused_total", reason="wrong_call") == 1
    with client.websocket_connect("/voice/stream") as ws:
        start(ws, twilio(OTHER_CALL, **{TOKEN_PARAMETER: token}))  # used up by the try above
        assert closed(ws)[0] == 1008
    assert voice.counter("streams_refused_total", reason="bad_token") == 1


def test_a_second_stream_for_a_live_call_is_refused_and_the_call_goes_on(tmp_path) -> None:
    voice = Voice(tmp_path)
    client = voice.client()
    first, second = token_of(client), token_of(client)  # the webhook, replayed for the same call
    victim = twilio(PARAMS, **{TOKEN_PARAMETER: first})
    with client.websocket_connect("/voice/stream") as call:
        start(call, victim)
        first_media(call)
        with client.websocket_connect("/voice/stream") as attacker:
            start(attacker, twilio(PARAMS, **{TOKEN_PARAMETER: second}))
            code, message, sent = closed(attacker)
        assert code == 1008 and "already has a live stream" in message and sent == []
        call.send_text(json.dumps(victim.stop()))
        assert closed(call)[0] == 1000
    assert voice.counter("streams_refused_total", reason="duplicate") == 1
    assert [s.call_sid for s in voice.recorder.started] == [PARAMS["CallSid"]]
    assert [s.status for s in voice.recorder.ended] == ["completed"]


def test_the_org_cap_answers_busy_at_the_webhook_and_holds_at_the_stream(tmp_path) -> None:
    voice = Voice(tmp_path, velox_max_calls_per_org=1)
    client = voice.client()
    # Both webhooks come before either stream: the stream's claim is the binding check.
    first, second = token_of(client), token_of(client, OTHER_CALL)
    live = twilio(PARAMS, **{TOKEN_PARAMETER: first})
    with client.websocket_connect("/voice/stream") as call:
        start(call, live)
        first_media(call)
        busy = client.post("/voice/incoming", data=dict(PARAMS, CallSid="CA" + "e" * 32))
        assert "lines are busy" in busy.text and "<Hangup" in busy.text
        assert voice.counter("calls_refused_total", reason="busy") == 1
        with client.websocket_connect("/voice/stream") as late:
            start(late, twilio(OTHER_CALL, **{TOKEN_PARAMETER: second}))
            assert closed(late)[0] == 1008
        assert voice.counter("streams_refused_total", reason="busy") == 1
        call.send_text(json.dumps(live.stop()))
        assert closed(call)[0] == 1000


def test_the_call_is_the_webhooks_whatever_the_start_message_claims(tmp_path) -> None:
    voice = Voice(tmp_path)
    client = voice.client()
    token = token_of(client)
    forged = {TOKEN_PARAMETER: token, "from": "+19998887777", "orgId": "another-org"}
    stream = twilio(PARAMS, **forged)
    with client.websocket_connect("/voice/stream") as ws:
        start(ws, stream)
        first_media(ws)
        ws.send_text(json.dumps(stream.stop()))
        closed(ws)
    (started,) = voice.recorder.started
    assert (started.from_number, started.to_number) == (PARAMS["From"], PARAMS["To"])


# ----------------------------------------------------------------------------- what a stream costs


def test_a_frame_over_64_kib_closes_the_stream(tmp_path) -> None:
    voice = Voice(tmp_path)
    client = voice.client()
    stream = twilio(PARAMS, **{TOKEN_PARAMETER: token_of(client)})
    with client.websocket_connect("/voice/stream") as ws:
        start(ws, stream)
        ws.send_text(json.dumps({"event": "mark", "pad": "x" * 70_000}))
        code, message, _ = closed(ws)
    assert code == 1008 and "frame" in message


def test_audio_faster_than_real_time_closes_the_stream(tmp_path) -> None:
    voice = Voice(tmp_path)
    client = voice.client()
    stream = twilio(PARAMS, **{TOKEN_PARAMETER: token_of(client)})
    with client.websocket_connect("/voice/stream") as ws:
        start(ws, stream)
        for message in silence(stream, 10.0):  # ten seconds of audio, sent at once
            ws.send_text(message)
        code, message, _ = closed(ws)
    assert code == 1008 and "faster than real time" in message


def test_a_silent_stream_is_closed(tmp_path) -> None:
    voice = Voice(tmp_path, media_idle_timeout_s=0.5)
    client = voice.client()
    stream = twilio(PARAMS, **{TOKEN_PARAMETER: token_of(client)})
    with client.websocket_connect("/voice/stream") as ws:
        start(ws, stream)
        code, message, _ = closed(ws)
    assert code == 1008 and "no audio" in message
    assert [s.status for s in voice.recorder.ended] == ["failed"]


def test_webhooks_from_one_address_are_rate_limited(tmp_path) -> None:
    voice = Voice(tmp_path, rate_limit_webhooks="2/minute")
    client = voice.client()
    assert [client.post("/voice/incoming", data=PARAMS).status_code for _ in range(2)] == [200] * 2
    refused = client.post("/voice/incoming", data=PARAMS)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert voice.counter("calls_refused_total", reason="rate_limited") == 1
    # Another address is counted on its own.
    other = voice.client(client=("198.51.100.20", 5000))
    assert other.post("/voice/incoming", data=PARAMS).status_code == 200


def test_stream_handshakes_from_one_address_are_rate_limited(tmp_path) -> None:
    voice = Voice(tmp_path, rate_limit_stream_handshakes="1/minute")
    client = voice.client()
    with client.websocket_connect("/voice/stream") as ws:
        ws.close()
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect("/voice/stream"):
            pass
    assert denied.value.status_code == 429 and "retry-after" in denied.value.headers
    assert voice.counter("streams_refused_total", reason="rate_limited") == 1
