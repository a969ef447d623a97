"""Twilio voice: the incoming-call webhook (TwiML) and the Media Streams WebSocket.

Nothing here trusts the caller of these routes: without TWILIO_AUTH_TOKEN they are served only
on a loopback server (or under a loudly named development flag); with it, every request must be
signed for the URL we know we are reached at, and each media stream must bring the single-use
token that its call's signed webhook issued.
"""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter, HTTPException, Request, Response, WebSocket, status
from fastapi.responses import JSONResponse
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect, WebSocketState

from app.api.deps import CallHubDep, MetricsDep, RateLimitsDep, SettingsDep
from app.api.errors import error_body
from app.api.proxy import client_address, forwarded
from app.api.rate_limits import RateLimited, RateLimits
from app.call_state.admission import TOKEN_PARAMETER
from app.calls.hub import CallHub, Connect, IncomingCall
from app.calls.reader import SocketClosed
from app.observability.metrics import Metrics
from app.settings import Settings
from app.telephony import twiml
from app.telephony.exposure import voice_refusal
from app.telephony.messages import MAX_FRAME_CHARS, SID_PATTERN, ProtocolError
from app.telephony.signature import SignatureVerifier, public_request_url

logger = logging.getLogger(__name__)

router = APIRouter(tags=["voice"])
TWIML = "application/xml"
NOT_IN_SERVICE = (
    "Sorry, the number you have called is not in service. Please check the number and try again."
)
BUSY = "Sorry, all our lines are busy right now. Please call again in a few minutes."
_SID = re.compile(SID_PATTERN)
# Phone numbers, SIP URIs and "client:name" identities all fit; anything longer is not Twilio.
_MAX_ADDRESS = 128


def _refuse_if_off(settings: Settings) -> None:
    reason = voice_refusal(settings)
    if reason is not None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"voice is off: {reason}")


@router.post(
    "/voice/incoming",
    summary="Twilio incoming-call webhook",
    response_class=Response,
    responses={
        200: {"content": {TWIML: {}}, "description": "TwiML connecting the call to the stream"},
        400: {"description": "Not a Twilio incoming-call request"},
        403: {"description": "X-Twilio-Signature missing or wrong"},
        429: {"description": "Too many webhooks from this address; see Retry-After"},
        503: {"description": "Voice is off: this server is not configured to take calls"},
    },
)
async def incoming_call(
    request: Request,
    settings: SettingsDep,
    hub: CallHubDep,
    metrics: MetricsDep,
    limits: RateLimitsDep,
) -> Response:
    """Answer a call with `<Connect><Stream>` to this server's media-stream socket."""
    try:
        _refuse_if_off(settings)
        await limits.hit(limits.webhooks, client_address(request, settings))
    except RateLimited:
        metrics.calls_refused_total.labels(reason="rate_limited").inc()
        raise
    except HTTPException:
        metrics.calls_refused_total.labels(reason="voice_off").inc()
        raise
    form = await request.form()
    params = {key: str(value) for key, value in form.items()}
    if not signed_by_twilio(request, params, settings):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "X-Twilio-Signature does not match this request: check TWILIO_AUTH_TOKEN and that "
            "VELOX_PUBLIC_URL (or the trusted proxy's X-Forwarded-* headers) is the URL Twilio "
            "calls",
        )
    call = _incoming_call(params)
    answer = await hub.answer(call)
    if answer == "not_in_service":
        metrics.calls_refused_total.labels(reason="not_in_service").inc()
        logger.warning("call %s: nobody answers %s; hanging up", call.call_sid, call.to_number)
        return Response(twiml.say_and_hangup(NOT_IN_SERVICE), media_type=TWIML)
    if answer == "busy":
        metrics.calls_refused_total.labels(reason="busy").inc()
        logger.warning("call %s: the organization is at its call limit; busy", call.call_sid)
        return Response(twiml.say_and_hangup(BUSY), media_type=TWIML)
    assert isinstance(answer, Connect)
    stream = twiml.stream_url(
        public_url=settings.server.velox_public_url,
        scheme=request.url.scheme,
        host=request.headers.get("host", request.url.netloc),
        forwarded_proto=forwarded(request, settings, "x-forwarded-proto"),
        forwarded_host=forwarded(request, settings, "x-forwarded-host"),
    )
    logger.info("call %s: incoming, agent %s", call.call_sid, answer.agent.id)
    return Response(twiml.connect_stream(stream, {TOKEN_PARAMETER: answer.token}), media_type=TWIML)


def _incoming_call(params: dict[str, str]) -> IncomingCall:
    """The webhook's fields, checked before anything logs or stores them."""
    call_sid, account_sid = params.get("CallSid", ""), params.get("AccountSid", "")
    if not _SID.match(call_sid) or not _SID.match(account_sid):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "not a Twilio incoming-call request: CallSid and AccountSid must be Twilio ids",
        )
    numbers = params.get("From", ""), params.get("To", "")
    if any(len(n) > _MAX_ADDRESS or not n.isprintable() for n in numbers):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "From and To must be short text")
    return IncomingCall(call_sid, account_sid, *numbers)


def signed_by_twilio(
    connection: HTTPConnection, params: dict[str, str], settings: Settings
) -> bool:
    """True when X-Twilio-Signature matches the public URL (or no TWILIO_AUTH_TOKEN is set).

    Raises:
        HTTPException: 400 when the URL Twilio called cannot be known (an unknown scheme).
    """
    if settings.telephony.twilio_auth_token is None:
        return True
    try:
        url = public_request_url(
            str(connection.url),
            forwarded(connection, settings, "x-forwarded-proto"),
            forwarded(connection, settings, "x-forwarded-host"),
            settings.server.velox_public_url,
        )
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    verifier = SignatureVerifier(settings.telephony.twilio_auth_token)
    if verifier.verify(url, params, connection.headers.get("x-twilio-signature")):
        return True
    logger.warning("rejected %s: bad X-Twilio-Signature", connection.url.path)
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
        text = message.get("text")
        if text is None:
            raise ProtocolError("binary WebSocket frame; Media Streams messages are JSON text")
        if len(text) > MAX_FRAME_CHARS:
            raise ProtocolError(f"a {len(text)}-character frame; at most {MAX_FRAME_CHARS}")
        return str(text)

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


async def _media_stream(
    websocket: WebSocket, settings: Settings, hub: CallHub, limits: RateLimits, metrics: Metrics
) -> None:
    # Refused before the handshake completes: the client sees a 403 (or 429), and no call runs.
    refused = metrics.streams_refused_total
    if voice_refusal(settings) is not None:
        refused.labels(reason="voice_off").inc()
        await websocket.close(code=1008, reason="voice is off on this server")
        return
    try:
        await limits.hit(limits.stream_handshakes, client_address(websocket, settings))
    except RateLimited as exc:
        refused.labels(reason="rate_limited").inc()
        await _deny(websocket, exc)
        return
    # Twilio signs the handshake over the stream URL alone, with no parameters.
    try:
        signed = signed_by_twilio(websocket, {}, settings)
    except HTTPException:
        signed = False
    if not signed:
        refused.labels(reason="bad_signature").inc()
        await websocket.close(code=1008, reason="bad X-Twilio-Signature")
        return
    await websocket.accept()
    await hub.serve(StarletteMediaSocket(websocket))


async def _deny(websocket: WebSocket, exc: RateLimited) -> None:
    """A 429 with Retry-After where the server can send an HTTP answer to a handshake, and a
    plain refusal (403) where it cannot."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = error_body(exc.status_code, str(exc.detail))
        await websocket.send_denial_response(JSONResponse(body, exc.status_code, exc.headers))
    else:
        await websocket.close(code=1008, reason="rate limited")


@router.websocket("/voice/stream")
@router.websocket("/media-stream")  # an alias some Twilio samples use
async def media_stream(
    websocket: WebSocket,
    settings: SettingsDep,
    hub: CallHubDep,
    limits: RateLimitsDep,
    metrics: MetricsDep,
) -> None:
    """Twilio Media Streams: one bidirectional call audio stream."""
    await _media_stream(websocket, settings, hub, limits, metrics)
