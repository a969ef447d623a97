"""GET /health and GET /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.requests import HTTPConnection

from app.calls.hub import CallHub

router = APIRouter(tags=["operations"])


def hub_of(connection: HTTPConnection) -> CallHub:
    """The CallHub this replica serves calls with."""
    hub: CallHub = connection.app.state.hub
    return hub


@router.get("/health", summary="Liveness and the engines in use")
async def health(request: Request) -> dict[str, Any]:
    """`{"status": "ok", ...}` with each engine, and warnings an operator should act on."""
    hub = hub_of(request)
    settings = hub.settings
    warnings: list[str] = []
    if settings.twilio_auth_token is None:
        warnings.append(
            "TWILIO_AUTH_TOKEN is not set: webhook signatures are NOT verified; "
            "anyone can place calls to this server"
        )
    if settings.gemini_api_key is None:
        warnings.append("GEMINI_API_KEY is not set: every LLM tier runs on the local model")
    llm = hub.engines.llm.name
    return {
        "status": "ok",
        "engines": {
            "stt": hub.engines.stt.name,
            "tts": hub.engines.tts.name,
            "llm": {"slm": llm, "flash": llm, "pro": llm},
        },
        "twilio_signature_validation": settings.twilio_auth_token is not None,
        "active_calls": len(hub.sessions),
        "warnings": warnings,
    }


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the velox_* series."""
    hub = hub_of(request)
    return Response(await hub.metrics.exposition(), media_type=hub.metrics.content_type)
