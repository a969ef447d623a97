"""Limits applied in Ray Serve's HTTP proxy, before a frame crosses to an ingress replica.

Serve's proxy runs uvicorn with its defaults (16 MiB WebSocket frames, per-message deflate) and
HTTPOptions cannot change them, but Serve calls the function named by
RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH for extra ASGI middleware when the proxy starts. This
module is that function: a frame larger than any Media Streams message is refused in the proxy
(close 1009) instead of being copied to a replica that would refuse it anyway. uvicorn still
buffers up to its own 16 MiB (after inflation: the websockets library bounds the inflated size
too), which is the most one frame can cost the proxy.

`launch.run_local` sets the variable for `make run`; a cluster sets it in the Ray node's
environment (the KubeRay head and worker containers).
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.telephony.messages import MAX_FRAME_CHARS

CALLBACK = "deployments.proxy_limits:proxy_middlewares"
MESSAGE_TOO_BIG = 1009  # RFC 6455


class WebSocketFrameLimit:
    """Closes a WebSocket whose client sends a frame over `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_FRAME_CHARS) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "websocket.receive" and _size(message) > self.max_bytes:
                await send(
                    {
                        "type": "websocket.close",
                        "code": MESSAGE_TOO_BIG,
                        "reason": "frame too large",
                    }
                )
                return {"type": "websocket.disconnect", "code": MESSAGE_TOO_BIG}
            return message

        await self.app(scope, limited_receive, send)


def _size(message: Message) -> int:
    text = message.get("text")
    return len(text.encode()) if text is not None else len(message.get("bytes") or b"")


def proxy_middlewares() -> list[Middleware]:
    """What Serve's proxy adds to its ASGI stack (RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH)."""
    return [Middleware(WebSocketFrameLimit)]
