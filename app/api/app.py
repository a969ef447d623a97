"""Builds the FastAPI application; `app.services.Services.attach` gives it what routes use."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api import (
    agents,
    api_keys,
    calls,
    conversations,
    documents,
    health,
    knowledge,
    organization,
    phone_numbers,
    playground,
    voice,
)
from app.api.errors import FieldError, error_body
from app.api.limits import RequestBodyLimit
from app.api.text_guard import RejectUnstorableText


def create_app() -> FastAPI:
    """The Velox web application (routes only; engines come with the hub)."""
    api = FastAPI(title="Velox", version="0.1.0", summary="AI voice agents for phone calls")
    # The last added runs first: the body limit counts every byte before anything reads it.
    api.add_middleware(RejectUnstorableText)
    api.add_middleware(RequestBodyLimit)
    api.include_router(health.router)
    api.include_router(voice.router)
    for router in (
        agents.router,
        phone_numbers.router,
        conversations.router,
        calls.router,
        api_keys.router,
        documents.router,
        knowledge.router,
        playground.router,
        organization.router,
    ):
        api.include_router(router)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail), getattr(exc, "fields", None)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @api.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            FieldError(field=".".join(str(p) for p in err["loc"]), message=err["msg"])
            for err in exc.errors()
        ]
        summary = "; ".join(f"{f.field}: {f.message}" for f in fields[:3])
        return JSONResponse(error_body(422, f"invalid request: {summary}", fields), status_code=422)

    @api.exception_handler(DataError)
    async def unstorable_value(_request: Request, exc: DataError) -> JSONResponse:
        # A value the schema let through but Postgres refuses (too long, out of range): the
        # client's to fix, so a 422; the driver's text names the column type, not our internals.
        reason = str(exc.orig).split("\n", 1)[0][:200] if exc.orig else "invalid value"
        return JSONResponse(error_body(422, f"invalid request: {reason}"), status_code=422)

    return api
