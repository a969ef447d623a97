"""GET /health and GET /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import text
from starlette.requests import HTTPConnection

from app.calls.hub import CallHub
from app.db.database import Database

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
    local = hub.engines.llm.name
    cloud = settings.gemini_api_key is not None
    database = await _database_status(request)
    if database.get("reachable") is False:
        warnings.append("the database is unreachable: calls are answered but not recorded")
    return {
        "status": "ok",
        "engines": {
            "stt": hub.engines.stt.name,
            "tts": hub.engines.tts.name,
            "llm": {
                "slm": local,
                "flash": settings.gemini_flash_model if cloud else local,
                "pro": settings.gemini_pro_model if cloud else local,
            },
        },
        "llm_tiers": "gemini" if cloud else "local only",
        "tools": sorted(hub.toolbox.configured()),
        "twilio_signature_validation": settings.twilio_auth_token is not None,
        "active_calls": len(hub.sessions),
        "database": database,
        "call_state": "redis" if settings.redis_url else "in-process",
        "demo_agent": settings.demo_agent_enabled,
        "clerk_auth": settings.clerk_secret_key is not None,
        "warnings": warnings,
    }


async def _database_status(request: Request) -> dict[str, Any]:
    db: Database | None = getattr(request.app.state, "db", None)
    if db is None:
        return {"configured": False}
    settings = hub_of(request).settings
    embedded = str((settings.velox_data_dir / "postgres").resolve())
    url = settings.database_url or ""
    kind = "embedded" if not url or embedded in url else "external"
    status: dict[str, Any] = {"kind": kind}
    try:
        async with asyncio.timeout(2), db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        status["reachable"] = True
    except Exception:
        status["reachable"] = False
    return status


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the velox_* series."""
    hub = hub_of(request)
    return Response(await hub.metrics.exposition(), media_type=hub.metrics.content_type)
