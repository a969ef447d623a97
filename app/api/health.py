"""GET /health and GET /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import text

from app.api.deps import CallHubDep, EnginesDep, MetricsDep, SettingsDep, ToolBoxDep
from app.db.database import Database
from app.settings import Settings

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness and the engines in use")
async def health(
    request: Request,
    settings: SettingsDep,
    engines: EnginesDep,
    toolbox: ToolBoxDep,
    hub: CallHubDep,
) -> dict[str, Any]:
    """`{"status": "ok", ...}` with each engine, and warnings an operator should act on."""
    warnings: list[str] = []
    if settings.telephony.twilio_auth_token is None:
        warnings.append(
            "TWILIO_AUTH_TOKEN is not set: webhook signatures are NOT verified; "
            "anyone can place calls to this server"
        )
    if settings.models.gemini_api_key is None:
        warnings.append("GEMINI_API_KEY is not set: every LLM tier runs on the local model")
    local = engines.llm.name
    cloud = settings.models.gemini_api_key is not None
    database = await _database_status(request, settings)
    if database.get("reachable") is False:
        warnings.append("the database is unreachable: calls are answered but not recorded")
    return {
        "status": "ok",
        "engines": {
            "stt": engines.stt.name,
            "tts": engines.tts.name,
            "llm": {
                "slm": local,
                "flash": settings.models.gemini_flash_model if cloud else local,
                "pro": settings.models.gemini_pro_model if cloud else local,
            },
        },
        "llm_tiers": "gemini" if cloud else "local only",
        "tools": sorted(toolbox.configured()),
        "twilio_signature_validation": settings.telephony.twilio_auth_token is not None,
        "active_calls": hub.active,
        "database": database,
        "call_state": "redis" if settings.database.redis_url else "in-process",
        "demo_agent": settings.demo_agent_enabled,
        "clerk_auth": settings.auth.clerk_secret_key is not None,
        "warnings": warnings,
    }


async def _database_status(request: Request, settings: Settings) -> dict[str, Any]:
    db: Database | None = getattr(request.app.state, "db", None)  # none in database-less tests
    if db is None:
        return {"configured": False}
    embedded = str((settings.server.velox_data_dir / "postgres").resolve())
    url = settings.database.database_url or ""
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
async def metrics(metrics: MetricsDep) -> Response:
    """Prometheus text exposition of the velox_* series."""
    return Response(await metrics.exposition(), media_type=metrics.content_type)
