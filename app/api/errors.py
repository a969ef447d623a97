"""The JSON error envelope every route returns, and its OpenAPI description."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel

DESCRIPTIONS = {
    400: "Bad request",
    401: "Missing, malformed, expired or revoked credentials",
    403: "Authenticated, but not allowed",
    404: "No such resource in your organization",
    409: "Conflicts with an existing resource",
    413: "Too large",
    415: "Unsupported media type",
    422: "The body or a parameter is invalid; `fields` says which and why",
    429: "Too many requests; `Retry-After` says when to try again",
    503: "A service this request needs is unavailable; retry later",
}

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


class FieldError(BaseModel):
    """One invalid field: where (`body.name`, `query.limit`) and why."""

    field: str
    message: str


class ErrorDetail(BaseModel):
    """What went wrong, for a program (`code`) and for a person (`message`)."""

    code: str
    message: str
    fields: list[FieldError] | None = None


class ErrorResponse(BaseModel):
    """`{"error": {"code", "message"}}`, the body of every 4xx and 5xx."""

    error: ErrorDetail


def error_body(status: int, message: str, fields: list[FieldError] | None = None) -> dict[str, Any]:
    """The envelope as JSON-ready data."""
    detail = ErrorDetail(code=CODES.get(status, "error"), message=message, fields=fields)
    return ErrorResponse(error=detail).model_dump(exclude_none=True)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the errors a route can return."""
    return {s: {"model": ErrorResponse, "description": DESCRIPTIONS[s]} for s in statuses}


class FieldValidationError(HTTPException):
    """A 422 about one field that only the database can check (a reference to another row)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(422, f"invalid request: {field}: {message}")
        self.fields = [FieldError(field=field, message=message)]

    @classmethod
    def of(cls, fields: list[FieldError]) -> FieldValidationError:
        """One 422 for several fields (the message names the first and counts the rest)."""
        error = cls(fields[0].field, fields[0].message)
        if len(fields) > 1:
            error.detail = f"{error.detail} (and {len(fields) - 1} more problems)"
        error.fields = list(fields)
        return error
