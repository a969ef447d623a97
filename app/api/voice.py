"""Twilio voice: the incoming-call webhook (TwiML) and the Media Streams WebSocket."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response, WebSocket, status
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect, WebSocketState

from app.api.deps import CallHubDep, SettingsDep
from app.calls.hub import CallHub
from app.calls.reader import SocketClosed
from app.settings import Settings
from app.telephony import twiml
from app.telephony.messages import ProtocolError
from app.telephony.signature import SignatureVerifier, public_request_url

logger = logging.getLogger(__name__)

router = APIRouter(tags=["voice"])
TWIML = "application/xml"
NOT_IN_SERVICE = (
    "Sorry, the number you have called is not in service. Please check the number and try again."
)


@router.post(
    "/voice/incoming",
    summary="Twilio incoming-call webhook",
    response_class=Response,
    responses={
        200: {"content": {TWIML: {}}, "description": "TwiML connecting the call to the stream"},
        403: {"description": "X-Twilio-Signature missing or wrong"},
    },
)
async def incoming_call(request: Request, settings: SettingsDep, hub: CallHubDep) -> Response:
    """Answer a call with `<Connect><Stream>` to this server's media-stream socket."""
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    if not signed_by_twilio(request, params, settings):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "X-Twilio-Signature does not match this request: check TWILIO_AUTH_TOKEN and that "
            "VELOX_PUBLIC_URL (or the proxy's X-Forwarded-* headers) is the URL Twilio calls",
        )
    call_sid, caller, called = (
        params.get("CallSid", ""),
        params.get("From", ""),
        params.get("To", ""),
    )
    agent = await hub.agent_for_number(called)
    if agent is None:
        logger.warning("call %s: nobody answers %s (from %s); hanging up", call_sid, called, caller)
        return Response(twiml.say_and_hangup(NOT_IN_SERVICE), media_type=TWIML)
    stream = twiml.stream_url(
        public_url=settings.server.velox_public_url,
        scheme=request.url.scheme,
        host=request.headers.get("host", request.url.netloc),
        forwarded_proto=request.headers.get("x-forwarded-proto"),
        forwarded_host=request.headers.get("x-forwarded-host"),
    )
    parameters = {"agentId": agent.id, "callSid": call_sid, "from": caller, "to": called}
    if agent.org_id is not None:
        parameters["orgId"] = agent.org_id
    logger.info("call %s: incoming from %s to %s, agent %s", call_sid, caller, called, agent.id)
    return Response(twiml.connect_stream(stream, parameters), media_type=TWIML)


def signed_by_twilio(
    connection: HTTPConnection, params: dict[str, str], settings: Settings
) -> bool:
    """True when X-Twilio-Signature matches the public URL (or no TWILIO_AUTH_TOKEN is set)."""
    if settings.telephony.twilio_auth_token is None:
        return True
    url = public_request_url(
        str(connection.url),
        connection.headers.get("x-forwarded-proto"),
        connection.headers.get("x-forwarded-host"),
        settings.server.velox_public_url,
    )
    verifier = SignatureVerifier(settings.telephony.twilio_auth_token)
    if verifier.verify(url, params, connection.headers.get("x-twilio-signature")):
        return True
    logger.warning("rejected %s: bad X-Twilio-Signature for %s", connection.url.path, url)
    return False


class StarletteMediaSocket:
    """Adapts a Starlette WebSocket to the MediaSocket the call session expects."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def receive_text(self) -> str:
        """Next text frame; binary frames are not part of the Media Streams protocol."""
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            raise SocketClosed(message.get("code"))
        if message.get("text") is not None:
            return str(message["text"])
        raise ProtocolError("binary WebSocket frame; Media Streams messages are JSON text")

    async def send_text(self, data: str) -> None:
        """Send one JSON message to Twilio."""
        try:
            await self._ws.send_text(data)
        except (WebSocketDisconnect, RuntimeError) as exc:
            raise SocketClosed(str(exc)) from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close once; a socket the peer already closed is left alone."""
        if self._ws.application_state == WebSocketState.CONNECTED and (
            self._ws.client_state == WebSocketState.CONNECTED
        ):
            await self._ws.close(code=code, reason=reason)


async def _media_stream(websocket: WebSocket, settings: Settings, hub: CallHub) -> None:
    # Twilio signs the handshake over the stream URL alone, with no parameters.
    if not signed_by_twilio(websocket, {}, settings):
        await websocket.close(code=1008, reason="bad X-Twilio-Signature")
        return
    await websocket.accept()
    await hub.serve(StarletteMediaSocket(websocket))


@router.websocket("/voice/stream")
async def media_stream(websocket: WebSocket, settings: SettingsDep, hub: CallHubDep) -> None:
    """Twilio Media Streams: one bidirectional call audio stream."""
    await _media_stream(websocket, settings, hub)


@router.websocket("/media-stream")
async def media_stream_alias(
    websocket: WebSocket, settings: SettingsDep, hub: CallHubDep
) -> None:
    """Alias of /voice/stream."""
    await _media_stream(websocket, settings, hub)
