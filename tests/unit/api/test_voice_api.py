"""The voice webhook, the media-stream socket, health and metrics over HTTP (fake engines)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from app.api.app import create_app
from app.api.rate_limits import RateLimits
from app.conversation.agent import AgentProfile
from app.observability.metrics import Metrics
from app.telephony.signature import SignatureVerifier
from app.tools.registry import ToolBox
from tests import factories

PARAMS = {
    "CallSid": "CA" + "a" * 32,
    "From": "+15550199",
    "To": "+15550100",
    "AccountSid": "AC" + "b" * 32,
    "CallStatus": "ringing",
    "Direction": "inbound",
}


PROXY = ("10.0.0.7", 50000)  # a reverse proxy's address, as the server sees the connection
LOCAL = ("127.0.0.1", 50000)  # the developer's own machine: sees health details and metrics


def make_app(tmp_path, **settings: object) -> FastAPI:  # type: ignore[no-untyped-def]
    # Explicit values, so a TWILIO_AUTH_TOKEN in the environment cannot change the outcome.
    values: dict[str, object] = {"twilio_auth_token": None, "velox_public_url": None, **settings}
    config = factories.settings(velox_data_dir=tmp_path, **values)
    engines = factories.engines()
    metrics = Metrics()
    hub = factories.call_hub(config, engines, agent=AgentProfile.default(config), metrics=metrics)
    api = create_app()
    # A database-less replica: what the voice and health routes depend on, nothing more.
    api.state.settings, api.state.engines, api.state.hub = config, engines, hub
    api.state.metrics, api.state.toolbox = metrics, ToolBox(config)
    api.state.rate_limits = RateLimits.from_settings(config)
    return api


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    assert stream is not None
    return stream.attrib["url"], {p.attrib["name"]: p.attrib["value"] for p in stream}


def test_incoming_call_answers_with_a_stream_and_parameters(tmp_path) -> None:
    client = TestClient(make_app(tmp_path))
    response = client.post("/voice/incoming", data=PARAMS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    url, params = stream_of(response.text)
    assert url == "ws://testserver/voice/stream"
    # Only the stream token: who the call is for stays on the server, out of the stream's hands.
    assert list(params) == ["streamToken"] and len(params["streamToken"]) >= 40


def test_forwarded_headers_of_a_trusted_proxy_make_a_public_wss_url(tmp_path) -> None:
    client = TestClient(make_app(tmp_path, velox_trusted_proxies="10.0.0.0/8"), client=PROXY)
    response = client.post(
        "/voice/incoming",
        data=PARAMS,
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "voice.example.com"},
    )
    assert stream_of(response.text)[0] == "wss://voice.example.com/voice/stream"


def test_signatures_are_checked_when_a_token_is_set(tmp_path) -> None:
    client = TestClient(make_app(tmp_path, twilio_auth_token="secret"))
    signature = SignatureVerifier("secret").sign("http://testserver/voice/incoming", PARAMS)
    ok = client.post("/voice/incoming", data=PARAMS, headers={"X-Twilio-Signature": signature})
    assert ok.status_code == 200
    tampered = dict(PARAMS, To="+15559999")
    bad = client.post("/voice/incoming", data=tampered, headers={"X-Twilio-Signature": signature})
    assert bad.status_code == 403
    assert bad.json()["error"]["code"] == "forbidden"
    assert "TWILIO_AUTH_TOKEN" in bad.json()["error"]["message"]
    missing = client.post("/voice/incoming", data=PARAMS)
    assert missing.status_code == 403


def test_stream_handshake_needs_a_valid_signature(tmp_path) -> None:
    client = TestClient(make_app(tmp_path, twilio_auth_token="secret"))
    with pytest.raises(WebSocketDisconnect) as refused:
        with client.websocket_connect("/voice/stream", headers={"X-Twilio-Signature": "nope"}):
            pass
    assert refused.value.code == 1008


def test_malformed_json_on_the_stream_closes_it_with_a_reason(tmp_path) -> None:
    api = make_app(tmp_path)
    client = TestClient(api)
    with client.websocket_connect("/media-stream") as ws:
        ws.send_text(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        ws.send_text("{oops")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1008 and "JSON" in closed.value.reason
    text = TestClient(api, client=LOCAL).get("/metrics").text
    assert 'velox_calls_total{status="failed"} 1.0' in text


def test_health_warns_without_a_twilio_token(tmp_path) -> None:
    body = TestClient(make_app(tmp_path), client=LOCAL).get("/health").json()
    assert body["status"] == "ok"
    assert body["twilio_signature_validation"] is False
    assert any("TWILIO_AUTH_TOKEN" in w for w in body["warnings"])
    assert body["engines"]["stt"] == "fake-stt"


def test_openapi_lists_the_voice_routes(tmp_path) -> None:
    paths = TestClient(make_app(tmp_path)).get("/openapi.json").json()["paths"]
    assert {"/voice/incoming", "/health", "/metrics"} <= set(paths)
