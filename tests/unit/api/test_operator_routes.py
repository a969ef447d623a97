"""What only the operator sees: /health details and /metrics need VELOX_OPERATOR_TOKEN, except
from this machine to a loopback-only server; the public gets liveness and nothing else."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from deployments.proxy_limits import WebSocketFrameLimit, proxy_middlewares
from tests.unit.api.test_voice_api import LOCAL, make_app

OUTSIDE = ("203.0.113.9", 40000)
TOKEN = "operator-secret"


def test_the_public_learns_only_that_the_server_is_up(tmp_path) -> None:
    client = TestClient(make_app(tmp_path, velox_host="0.0.0.0"), client=OUTSIDE)
    assert client.get("/health").json() == {"status": "ok"}
    refused = client.get("/metrics")
    assert refused.status_code == 401 and "VELOX_OPERATOR_TOKEN" in refused.text


def test_the_operator_token_shows_details_and_metrics(tmp_path) -> None:
    app = make_app(tmp_path, velox_host="0.0.0.0", velox_operator_token=TOKEN)
    client = TestClient(app, client=OUTSIDE)
    wrong = {"Authorization": "Bearer not-it"}
    assert client.get("/health", headers=wrong).json() == {"status": "ok"}
    assert client.get("/metrics", headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    details = client.get("/health", headers=right).json()
    assert details["twilio_signature_validation"] is False
    # Off loopback without a Twilio token voice is refused: the details say so and why.
    assert any(w.startswith("voice is OFF") for w in details["warnings"])
    assert "velox_calls_total" in client.get("/metrics", headers=right).text


def test_a_developer_on_loopback_needs_no_token(tmp_path) -> None:
    client = TestClient(make_app(tmp_path), client=LOCAL)
    assert "engines" in client.get("/health").json()
    assert client.get("/metrics").status_code == 200


def test_loopback_behind_a_local_proxy_is_not_the_operator(tmp_path) -> None:
    """A reverse proxy on the same host makes the world look like 127.0.0.1."""
    client = TestClient(make_app(tmp_path), client=LOCAL)
    proxied = {"X-Forwarded-For": "198.51.100.4"}
    assert client.get("/health", headers=proxied).json() == {"status": "ok"}
    assert client.get("/metrics", headers=proxied).status_code == 401


def test_a_public_server_hides_details_even_from_loopback(tmp_path) -> None:
    client = TestClient(make_app(tmp_path, velox_host="0.0.0.0"), client=LOCAL)
    assert client.get("/health").json() == {"status": "ok"}


def _echo_app() -> Starlette:
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect:
            pass  # the proxy's limit ended the stream: the app just sees the caller go

    app = Starlette(routes=[WebSocketRoute("/voice/stream", echo)])
    for middleware in proxy_middlewares():
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    return app


def test_the_serve_proxy_refuses_a_frame_over_64_kib() -> None:
    client = TestClient(_echo_app())
    with client.websocket_connect("/voice/stream") as ws:
        ws.send_text("x" * 1024)
        assert ws.receive_text() == "x" * 1024  # ordinary frames pass
        ws.send_text("x" * (64 * 1024 + 1))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1009
    assert WebSocketFrameLimit(_echo_app()).max_bytes == 64 * 1024
