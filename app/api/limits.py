"""Upload size limits enforced while the body arrives, not after it has been spooled to disk.

FastAPI parses a multipart body before the route runs, so a route can only reject a huge
upload once all of it has been received. This middleware answers 413 at once when the declared
Content-Length is too large, and stops reading a body (chunked, or lying about its length) the
moment it passes the limit.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_body

UPLOAD_PATHS = ("/api/documents/upload",)
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file


class BodyTooLarge(HTTPException):
    """The request body passed the limit while it was being read.

    An HTTPException, because FastAPI turns any other error raised while it parses a form into
    a 400 ("error parsing the body"); this one reaches the error handler as the 413 it is.
    """

    def __init__(self, limit_mb: int) -> None:
        super().__init__(413, f"the upload is larger than {limit_mb} MB")


class UploadSizeLimit:
    """ASGI middleware for the upload routes; the limit is `settings.knowledge.max_upload_mb`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in UPLOAD_PATHS:
            await self.app(scope, receive, send)
            return
        settings = getattr(scope["app"].state, "settings", None)
        if settings is None:
            await self.app(scope, receive, send)
            return
        limit = settings.knowledge.max_upload_mb * 1024 * 1024 + MULTIPART_SLACK
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(send, settings.knowledge.max_upload_mb)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(settings.knowledge.max_upload_mb)
            return message

        try:
            await self.app(scope, counting_receive, send)
        except BodyTooLarge:
            await _too_large(send, settings.knowledge.max_upload_mb)


async def _too_large(send: Send, limit_mb: int) -> None:
    body = json.dumps(error_body(413, f"the upload is larger than {limit_mb} MB")).encode()
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
