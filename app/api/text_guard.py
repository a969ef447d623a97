"""Refuses text the database cannot store — NUL characters and lone UTF-16 surrogates — with a 422
that names the field, before any route, dependency or query sees it.

Postgres rejects both inside `text` and `jsonb` ("invalid byte sequence", "unsupported Unicode
escape sequence"), and the driver cannot even encode a lone surrogate, so without this a JSON
string such as "\\u0000" in any field would end as a 500 deep inside a route. Checking here
covers every route at once, JSON bodies, query strings and path parameters alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import FieldError, error_body

# JSON escapes that decode to what the database refuses; a raw NUL byte is invalid JSON anyway.
SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|d[89a-f][0-9a-f]{2})", re.IGNORECASE)
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MESSAGE = "contains a NUL character or a lone surrogate, which cannot be stored"


def unstorable_fields(value: Any, path: str) -> Iterator[str]:
    """The paths (`body.tools.0.name`) of every string, key included, that cannot be stored."""
    if isinstance(value, str):
        if UNSTORABLE.search(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if UNSTORABLE.search(key):
                yield f"{path}.<key>"
            yield from unstorable_fields(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from unstorable_fields(item, f"{path}.{index}")


class RejectUnstorableText:
    """ASGI middleware; runs inside the body limit, so what it buffers is already bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        fields = [*self._in_url(scope)]
        if fields or scope["type"] == "websocket" or not _is_json(scope):
            if fields:
                await _refuse(scope, receive, send, fields)
            else:
                await self.app(scope, receive, send)
            return
        body, replay = await _buffer(receive)
        if SUSPECT_ESCAPE.search(body):
            try:
                fields = list(unstorable_fields(json.loads(body), "body"))
            except ValueError:
                fields = []  # not JSON after all: the route's own parsing says so
            if fields:
                await _refuse(scope, replay, send, fields)
                return
        await self.app(scope, replay, send)

    @staticmethod
    def _in_url(scope: Scope) -> Iterator[str]:
        if "\x00" in scope["path"]:
            yield "path"
        query = scope.get("query_string", b"").decode("latin-1")
        for name, value in parse_qsl(query, keep_blank_values=True):
            if UNSTORABLE.search(name) or UNSTORABLE.search(value):
                yield f"query.{name.replace(chr(0), '')}"


def _is_json(scope: Scope) -> bool:
    content_type = dict(scope["headers"]).get(b"content-type", b"").lower()
    return content_type.startswith(b"application/json") or b"+json" in content_type


async def _buffer(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body, and a `receive` that hands it on as if it had not been read."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


async def _refuse(scope: Scope, receive: Receive, send: Send, fields: list[str]) -> None:
    errors = [FieldError(field=field, message=MESSAGE) for field in fields]
    summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:3])
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": "invalid characters"})
        return
    response = JSONResponse(error_body(422, f"invalid request: {summary}", errors), 422)
    await response(scope, receive, send)
