"""Builds the FastAPI application; the caller attaches a CallHub to `app.state.hub`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api import health, voice


def create_app() -> FastAPI:
    """The Velox web application (routes only; engines come with the hub)."""
    api = FastAPI(title="Velox", version="0.1.0", summary="AI voice agents for phone calls")
    api.include_router(health.router)
    api.include_router(voice.router)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": _code(exc.status_code), "message": str(exc.detail)}},
            status_code=exc.status_code,
        )

    @api.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
            for err in exc.errors()
        ]
        return JSONResponse(
            {"error": {"code": "invalid_request", "message": "invalid request", "fields": fields}},
            status_code=422,
        )

    return api


def _code(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        409: "conflict",
        413: "too_large",
        415: "unsupported_media_type",
    }.get(status, "error")
