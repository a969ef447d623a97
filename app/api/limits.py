"""Request body limits, enforced while the body arrives: before it is parsed, spooled to disk or
authenticated, so an anonymous client cannot make a replica read or buffer more than the limit.

Every route gets `settings.server.velox_max_body_kb`; the upload route gets
`settings.knowledge.max_upload_mb`. A declared Content-Length over the limit is answered 413 at
once; a body that is chunked, or lies about its length, is cut off the moment it passes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_body
from app.settings import Settings

UPLOAD_PATHS = ("/api/documents/upload",)
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file


class BodyTooLarge(HTTPException):
    """The upload passed its limit while it was being read.

    An HTTPException, because FastAPI turns any other error raised while it parses a form into
    a 400 ("error parsing the body"); this one reaches the error handler as the 413 it is.
    """

    def __init__(self, limit_mb: int) -> None:
        super().__init__(413, f"the upload is larger than {limit_mb} MB")


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """How many bytes a request to one path may send, and what to say when it sends more."""

    max_bytes: int
    message: str

    @classmethod
    def for_path(cls, path: str, settings: Settings) -> BodyLimit:
        if path in UPLOAD_PATHS:
            mb = settings.knowledge.max_upload_mb
            return cls(mb * 1024 * 1024 + MULTIPART_SLACK, f"the upload is larger than {mb} MB")
        kb = settings.server.velox_max_body_kb
        return cls(kb * 1024, f"the request body is larger than {kb} KB")


class _Overflow(HTTPException):
    def __init__(self, limit: BodyLimit) -> None:
        super().__init__(413, limit.message)


class RequestBodyLimit:
    """ASGI middleware: the outermost layer, so nothing reads a body before it is counted."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings: Settings | None = getattr(scope["app"].state, "settings", None)
        if scope["type"] != "http" or settings is None:
            await self.app(scope, receive, send)
            return
        limit = BodyLimit.for_path(scope["path"], settings)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit.max_bytes:
            await too_large(send, limit.message)
            return
        received = 0
        responding = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit.max_bytes:
                    raise _Overflow(limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal responding
            responding = responding or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except (_Overflow, BodyTooLarge) as exc:
            if responding:  # the route had already answered; the connection just ends
                return
            await too_large(send, str(exc.detail))


async def too_large(send: Send, message: str) -> None:
    """A 413 in the API's error envelope, closing the connection (the rest of the body is
    not worth reading)."""
    body = json.dumps(error_body(413, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
