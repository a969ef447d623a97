"""GET /health and GET /metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import text

from app.api.deps import CallHubDep, EnginesDep, MetricsDep, SettingsDep, ToolBoxDep
from app.api.errors import responses
from app.api.operator import is_operator
from app.call_state.admission import replica_id
from app.db.database import Database
from app.settings import Settings
from app.telephony.exposure import voice_refusal

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness, and for the operator the engines and warnings")
async def health(
    request: Request,
    settings: SettingsDep,
    engines: EnginesDep,
    toolbox: ToolBoxDep,
    hub: CallHubDep,
) -> dict[str, Any]:
    """`{"status": "ok"}` for anyone (a load balancer's probe). The operator (VELOX_OPERATOR_TOKEN
    as a bearer token, or a local request to a loopback-only server) also gets each engine,
    signature checking, tools, active calls and the warnings to act on."""
    if not is_operator(request, settings):
        return {"status": "ok"}
    warnings: list[str] = []
    if (refusal := voice_refusal(settings)) is not None:
        warnings.append(f"voice is OFF: {refusal}")
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
        "replica": replica_id(),
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


@router.get(
    "/metrics",
    summary="Prometheus metrics (operator only)",
    response_class=Response,
    responses=responses(401),
)
async def metrics(request: Request, settings: SettingsDep, metrics: MetricsDep) -> Response:
    """Prometheus text exposition of the velox_* series, for the operator: scrape it with
    `Authorization: Bearer $VELOX_OPERATOR_TOKEN`."""
    if not is_operator(request, settings):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "metrics are for the operator: send 'Authorization: Bearer <VELOX_OPERATOR_TOKEN>'",
            {"WWW-Authenticate": "Bearer"},
        )
    return Response(await metrics.exposition(), media_type=metrics.content_type)
