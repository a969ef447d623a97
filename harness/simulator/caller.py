"""A simulated phone call that treats a Velox server exactly as Twilio would.

The simulator plays both of Twilio's parts: it posts the incoming-call webhook, follows the
`<Connect><Stream>` answer onto the Media Stream WebSocket, streams the caller's audio in 20 ms
mu-law frames (silence included, as Twilio streams continuously), and plays the agent's audio
back in real time the way a phone does, echoing marks when playback reaches them and at once on
`clear`. It never imports the server: everything it knows comes over the wire.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import functools
import json
import logging
import math
import secrets
import time
import wave
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import numpy as np
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from app.audio import resample_pcm16
from app.telephony.audio import (
    FRAME_BYTES,
    TWILIO_SAMPLE_RATE,
    frames,
    mulaw_to_pcm16,
    pcm16_to_mulaw,
)
from harness.simulator.phone import FRAME_S, Playback, TwilioStream, is_audible

logger = logging.getLogger(__name__)

MULAW_SILENCE_FRAME = b"\xff" * FRAME_BYTES
# Twilio validates AccountSid as "AC" + 32 hex; a fixed default keeps runs reproducible.
DEFAULT_ACCOUNT_SID = "AC" + "00" * 16
# Gap between key presses when dialling DTMF digits in real time.
DTMF_GAP_S = 0.25
# Past this much lag the sender rebases its schedule instead of bursting frames to catch up.
MAX_SEND_LAG_S = 1.0
_POLL_S = 0.01
_MAX_VIOLATIONS = 200

EventCallback = Callable[[str, dict[str, Any]], None]
_T = TypeVar("_T")


class CallSetupError(RuntimeError):
    """The call could not be set up: the webhook or the WebSocket handshake failed."""

    def __init__(self, message: str, *, status_code: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


@dataclass
class CallerTurn:
    """What the caller says in one turn."""

    audio_pcm16_8k: bytes
    text: str | None = None
    wait_for_reply: bool = True
    # Speak this many seconds after the agent's reply audio starts arriving: interrupt it. The
    # turn before must not wait for its reply, so that the reply is still playing.
    barge_in_after_s: float | None = None
    # Digits sent as `dtmf` events before the audio (the audio may be empty).
    dtmf: str | None = None


@dataclass
class TurnResult:
    """What happened in one caller turn. Times are seconds on the call's clock."""

    index: int
    text: str | None
    barge_in: bool = False
    started_at: float | None = None
    speech_start_at: float | None = None
    speech_end_at: float | None = None
    first_reply_audio_at: float | None = None
    voice_to_voice_s: float | None = None
    reply_audio: bytes = b""
    reply_done_at: float | None = None
    timed_out: bool = False
    clear_at: float | None = None
    barge_in_stop_s: float | None = None
    marks_echoed: list[str] = field(default_factory=list)
    dtmf_sent: str = ""

    def to_dict(self, origin: float | None = None) -> dict[str, Any]:
        """JSON-ready form; times become seconds since `origin` (the stream's opening)."""

        def rel(t: float | None) -> float | None:
            if t is None:
                return None
            return round(t - origin, 4) if origin is not None else t

        return {
            "index": self.index,
            "text": self.text,
            "barge_in": self.barge_in,
            "started_t": rel(self.started_at),
            "speech_start_t": rel(self.speech_start_at),
            "speech_end_t": rel(self.speech_end_at),
            "first_reply_audio_t": rel(self.first_reply_audio_at),
            "voice_to_voice_s": _round(self.voice_to_voice_s),
            "reply_audio_s": round(len(self.reply_audio) / TWILIO_SAMPLE_RATE, 3),
            "reply_done_t": rel(self.reply_done_at),
            "timed_out": self.timed_out,
            "clear_t": rel(self.clear_at),
            "barge_in_stop_s": _round(self.barge_in_stop_s),
            "marks_echoed": list(self.marks_echoed),
            "dtmf_sent": self.dtmf_sent,
        }


@dataclass
class CallResult:
    """Everything one simulated call observed. Times are seconds on the call's clock."""

    call_sid: str
    account_sid: str
    stream_sid: str | None = None
    rejected: bool = False
    rejected_say: str | None = None
    twiml: str = ""
    stream_url: str | None = None
    custom_parameters: dict[str, str] = field(default_factory=dict)
    opened_at: float | None = None
    greeting_audio: bytes = b""
    greeting_latency_s: float | None = None
    greeting_timed_out: bool = False
    turns: list[TurnResult] = field(default_factory=list)
    # Messages the simulator (Twilio) sent to the server, and those the server sent back.
    events_sent: dict[str, int] = field(default_factory=dict)
    events_received: dict[str, int] = field(default_factory=dict)
    marks_echoed: list[str] = field(default_factory=list)
    agent_audio: bytes = b""
    caller_audio: bytes = b""
    violations: list[str] = field(default_factory=list)
    # "caller" (stop, then close), "caller-abrupt" (connection dropped) or "server".
    ended_by: str | None = None
    close_code: int | None = None
    duration_s: float | None = None

    def to_dict(self, *, include_audio: bool = False) -> dict[str, Any]:
        """JSON-ready form; audio becomes durations (and base64 with `include_audio`)."""
        origin = self.opened_at
        out: dict[str, Any] = {
            "call_sid": self.call_sid,
            "account_sid": self.account_sid,
            "stream_sid": self.stream_sid,
            "rejected": self.rejected,
            "rejected_say": self.rejected_say,
            "stream_url": self.stream_url,
            "custom_parameters": dict(self.custom_parameters),
            "greeting_latency_s": _round(self.greeting_latency_s),
            "greeting_audio_s": round(len(self.greeting_audio) / TWILIO_SAMPLE_RATE, 3),
            "greeting_timed_out": self.greeting_timed_out,
            "turns": [turn.to_dict(origin) for turn in self.turns],
            "events_sent": dict(self.events_sent),
            "events_received": dict(self.events_received),
            "marks_echoed": list(self.marks_echoed),
            "agent_audio_s": round(len(self.agent_audio) / TWILIO_SAMPLE_RATE, 3),
            "caller_audio_s": round(len(self.caller_audio) / TWILIO_SAMPLE_RATE, 3),
            "violations": list(self.violations),
            "ended_by": self.ended_by,
            "close_code": self.close_code,
            "duration_s": _round(self.duration_s),
        }
        if include_audio:
            for name in ("greeting_audio", "agent_audio", "caller_audio"):
                out[f"{name}_mulaw_b64"] = base64.b64encode(getattr(self, name)).decode()
        return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# --- audio helpers ------------------------------------------------------------------------------


def load_wav_8k(path: str | Path) -> bytes:
    """Read a 16-bit PCM WAV (any rate, any channel count) as 8 kHz mono PCM16."""
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels = wav.getsampwidth(), wav.getnchannels()
            rate = wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except wave.Error as exc:
        raise ValueError(f"{path}: not a PCM WAV file ({exc}); convert it to 16-bit PCM") from exc
    if width != 2:
        raise ValueError(f"{path}: {8 * width}-bit samples; convert it to 16-bit PCM")
    samples = np.frombuffer(data[: len(data) - len(data) % (2 * channels)], dtype="<i2")
    if channels > 1:
        samples = samples.reshape(-1, channels).astype(np.int32).mean(axis=1)
        samples = np.round(samples).astype("<i2")
    return resample_pcm16(samples.tobytes(), rate, TWILIO_SAMPLE_RATE)


def save_wav(path: str | Path, pcm16: bytes, rate: int) -> None:
    """Write mono 16-bit PCM as a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm16)


def mulaw_to_wav(path: str | Path, mulaw: bytes) -> None:
    """Write 8 kHz mu-law audio (as Twilio carries it) as a 16-bit PCM WAV file."""
    save_wav(path, mulaw_to_pcm16(mulaw), TWILIO_SAMPLE_RATE)


# --- the webhook and the TwiML answer -----------------------------------------------------------


@dataclass
class _Answer:
    twiml: str
    rejected: bool = False
    say: str | None = None
    stream_url: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


def _new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    return str(RequestValidator(auth_token).compute_signature(url, params))


def _parse_twiml(twiml: str) -> _Answer:
    try:
        root = ET.fromstring(twiml)
    except ET.ParseError as exc:
        raise CallSetupError(f"the webhook's TwiML is not XML: {exc}", body=twiml) from exc
    answer = _Answer(twiml=twiml)
    if root.tag != "Response":
        answer.violations.append(f"TwiML root element is <{root.tag}>, expected <Response>")
    stream = root.find("./Connect/Stream")
    if stream is not None:
        url = stream.get("url")
        if not url:
            raise CallSetupError("TwiML <Stream> has no url attribute", body=twiml)
        answer.stream_url = url
        for param in stream.findall("./Parameter"):
            name = param.get("name")
            if name is None:
                answer.violations.append("TwiML <Parameter> without a name")
                continue
            answer.parameters[name] = param.get("value", "")
        return answer
    if root.find("./Connect") is not None:
        raise CallSetupError("TwiML <Connect> holds no <Stream>", body=twiml)
    if any(root.find(f"./{verb}") is not None for verb in ("Say", "Hangup", "Reject")):
        answer.rejected = True
        spoken = [(say.text or "").strip() for say in root.findall("./Say")]
        answer.say = " ".join(s for s in spoken if s) or None
        return answer
    raise CallSetupError("TwiML has neither <Connect><Stream> nor <Say>/<Hangup>", body=twiml)


def _call_params(
    *, call_sid: str, account_sid: str, from_number: str, to_number: str
) -> dict[str, str]:
    # The incoming-call parameters our server may rely on.
    # Source: twilio.com/docs/usage/webhooks/voice-webhooks
    return {
        "CallSid": call_sid,
        "AccountSid": account_sid,
        "From": from_number,
        "To": to_number,
        "Called": to_number,
        "Caller": from_number,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }


async def _post_incoming_call(
    base_url: str,
    params: dict[str, str],
    *,
    auth_token: str | None,
    public_url: str | None,
    timeout_s: float,
) -> tuple[str, _Answer]:
    """POST the incoming-call webhook; return the URL Twilio called and the TwiML answer."""
    url = f"{base_url.rstrip('/')}/voice/incoming"
    # Twilio signs the URL it called: the public one when the server sits behind a proxy.
    called = f"{public_url.rstrip('/')}/voice/incoming" if public_url else url
    headers = {"User-Agent": "TwilioProxy/1.1"}
    if public_url:
        headers.update(_forwarded_headers(called))
    if auth_token is not None:
        headers["X-Twilio-Signature"] = _signature(auth_token, called, params)
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            response = await http.post(url, data=params, headers=headers)
    except httpx.HTTPError as exc:
        raise CallSetupError(f"could not reach the webhook {url}: {exc!r}") from exc
    if response.status_code != 200:
        raise CallSetupError(
            f"webhook {url} answered HTTP {response.status_code}: {response.text[:300]}",
            status_code=response.status_code,
            body=response.text,
        )
    answer = _parse_twiml(response.text)
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if content_type not in ("text/xml", "application/xml"):
        answer.violations.append(f"webhook answered Content-Type {content_type!r}, not text/xml")
    return called, answer


def _forwarded_headers(public: str) -> dict[str, str]:
    """What a TLS-terminating proxy in front of the server adds for a request to `public`."""
    parts = urlsplit(public)
    proto = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    return {"X-Forwarded-Proto": proto, "X-Forwarded-Host": parts.netloc}


def _socket_url(stream_url: str, base_url: str, public_url: str | None = None) -> str:
    """Where to connect: the stream URL's path and query on the host and port of `base_url`.

    The server names its public host (wss://voice.example.com) in the TwiML, which a local run
    cannot reach; the signature is still computed over the URL as the TwiML gave it. A path
    prefix of `public_url` is swapped for `base_url`'s, as the proxy in between would do.
    """
    given = urlsplit(stream_url)
    base = urlsplit(base_url)
    path = given.path or "/"
    if public_url:
        prefix = urlsplit(public_url).path.rstrip("/")
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        path = base.path.rstrip("/") + path
    scheme = {"http": "ws", "https": "wss"}.get(base.scheme, base.scheme)
    return urlunsplit((scheme, base.netloc, path, given.query, ""))


# --- the raw Media Stream socket ----------------------------------------------------------------


class RawStream:
    """A Media Stream socket speaking as Twilio, with no script: tests send what they like."""

    def __init__(
        self,
        ws: ClientConnection,
        *,
        stream_sid: str,
        call_sid: str,
        account_sid: str,
        stream_url: str,
        custom_parameters: dict[str, str],
        twiml: str = "",
    ) -> None:
        self.ws = ws
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.stream_url = stream_url
        self.custom_parameters = custom_parameters
        self.twiml = twiml
        self.events_sent: dict[str, int] = {}
        self.messages = TwilioStream(
            stream_sid=stream_sid,
            call_sid=call_sid,
            account_sid=account_sid,
            custom_parameters=custom_parameters,
        )
        # One message at a time, so that sequence numbers reach the server in order.
        self._send_lock = asyncio.Lock()

    @property
    def close_code(self) -> int | None:
        """The close code once the socket has closed (1006: dropped without a close frame)."""
        return self.ws.close_code

    async def send_text(self, text: str) -> None:
        """Send one text frame exactly as given (malformed JSON included)."""
        async with self._send_lock:
            await self.ws.send(text)

    async def send_json(self, message: dict[str, Any]) -> None:
        """Send one JSON message as given, without adding a sequence number."""
        async with self._send_lock:
            await self.ws.send(json.dumps(message))
        self._count(message)

    async def send_event(self, event: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send `{"event", "sequenceNumber", "streamSid", event: body}` with the next number."""
        return await self._send_next(lambda: self.messages.event(event, body))

    async def _send_next(self, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        # Numbered under the lock, so sequence numbers reach the server in order.
        async with self._send_lock:
            message = build()
            await self.ws.send(json.dumps(message))
        self._count(message)
        return message

    async def send_connected(self) -> None:
        """Twilio's first message on every stream."""
        await self.send_json(self.messages.connected())

    async def send_start(self) -> None:
        """The `start` message (sequenceNumber "1"), carrying the TwiML's <Parameter>s."""
        await self._send_next(self.messages.start)

    async def send_media(self, mulaw: bytes, *, timestamp_ms: int | None = None) -> None:
        """One inbound media message; `timestamp_ms` defaults to the audio time of this chunk."""
        await self._send_next(lambda: self.messages.media(mulaw, timestamp_ms=timestamp_ms))

    async def send_dtmf(self, digit: str) -> None:
        """A key press on the caller's phone."""
        await self._send_next(lambda: self.messages.dtmf(digit))

    async def send_mark(self, name: str) -> None:
        """Echo a mark: playback reached it (or the queue was cleared)."""
        await self._send_next(lambda: self.messages.mark(name))

    async def send_stop(self) -> None:
        """The caller hung up."""
        await self._send_next(self.messages.stop)

    async def recv(self, timeout_s: float) -> dict[str, Any] | None:
        """The next server message; None on timeout or once closed. Non-JSON: {"_raw": text}."""
        try:
            raw = await asyncio.wait_for(self.ws.recv(), timeout_s)
        except (TimeoutError, ConnectionClosed):
            return None
        try:
            message = json.loads(raw)
        except ValueError:
            return {"_raw": raw}
        return message if isinstance(message, dict) else {"_raw": raw}

    async def wait_for(self, event: str, timeout_s: float) -> dict[str, Any] | None:
        """Skip server messages until one with this event arrives; None on timeout or close."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            message = await self.recv(left)
            if message is None:
                return None
            if message.get("event") == event:
                return message
        return None

    async def close(self, *, abrupt: bool = False) -> None:
        """Close the socket; `abrupt` drops the connection without a close frame."""
        if abrupt:
            self.ws.transport.abort()
            # Let the event loop register the lost connection, so close_code reads 1006.
            await self.ws.wait_closed()
            return
        await self.ws.close()

    def _count(self, message: dict[str, Any]) -> None:
        event = str(message.get("event"))
        self.events_sent[event] = self.events_sent.get(event, 0) + 1


async def _connect_socket(
    socket_url: str,
    signed_url: str,
    *,
    auth_token: str | None,
    signature: str | None,
    behind_proxy: bool,
    timeout_s: float,
) -> ClientConnection:
    headers = _forwarded_headers(signed_url) if behind_proxy else {}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    elif auth_token is not None:
        # Twilio signs the handshake over the stream URL it was given, with no parameters.
        headers["X-Twilio-Signature"] = _signature(auth_token, signed_url, {})
    try:
        return await connect(
            socket_url,
            additional_headers=headers,
            open_timeout=timeout_s,
            compression=None,
            ping_interval=None,
        )
    except InvalidStatus as exc:
        code = exc.response.status_code
        body = exc.response.body.decode(errors="replace") if exc.response.body else ""
        raise CallSetupError(
            f"WebSocket handshake to {socket_url} rejected: HTTP {code}",
            status_code=code,
            body=body,
        ) from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise CallSetupError(f"could not open the WebSocket {socket_url}: {exc!r}") from exc


async def open_stream(
    base_url: str,
    *,
    auth_token: str | None = None,
    via_webhook: bool = True,
    stream_url: str | None = None,
    custom_parameters: dict[str, str] | None = None,
    signature: str | None = None,
    send_start: bool = True,
    to_number: str = "+15550100",
    from_number: str = "+15550199",
    account_sid: str = DEFAULT_ACCOUNT_SID,
    public_url: str | None = None,
    timeout_s: float = 10,
) -> RawStream:
    """Open a Media Stream as Twilio would, then hand the socket to the test.

    With `via_webhook` the stream URL and parameters come from the webhook's TwiML; otherwise
    `stream_url` (default `<base_url as ws>/voice/stream`) and `custom_parameters` are used.
    `signature` replaces the handshake's X-Twilio-Signature (e.g. a wrong one). With
    `send_start` the `connected` and `start` messages are sent before returning. `public_url`
    is as for `place_call`.
    """
    call_sid = _new_sid("CA")
    twiml = ""
    params = dict(custom_parameters or {})
    if via_webhook:
        webhook_url, answer = await _post_incoming_call(
            base_url,
            _call_params(
                call_sid=call_sid,
                account_sid=account_sid,
                from_number=from_number,
                to_number=to_number,
            ),
            auth_token=auth_token,
            public_url=public_url,
            timeout_s=timeout_s,
        )
        if answer.rejected or answer.stream_url is None:
            raise CallSetupError(f"the server rejected the call: {answer.say!r}", body=answer.twiml)
        twiml = answer.twiml
        if custom_parameters is None:
            params = answer.parameters
        signed_url = urljoin(webhook_url, answer.stream_url)
        socket_url = _socket_url(signed_url, base_url, public_url)
    else:
        signed_url = socket_url = _socket_url("/voice/stream", base_url)
    if stream_url is not None:
        signed_url = socket_url = stream_url
    ws = await _connect_socket(
        socket_url,
        signed_url,
        auth_token=auth_token,
        signature=signature,
        behind_proxy=public_url is not None,
        timeout_s=timeout_s,
    )
    stream = RawStream(
        ws,
        stream_sid=_new_sid("MZ"),
        call_sid=call_sid,
        account_sid=account_sid,
        stream_url=signed_url,
        custom_parameters=params,
        twiml=twiml,
    )
    if send_start:
        await stream.send_connected()
        await stream.send_start()
    return stream


# --- the caller's voice -------------------------------------------------------------------------


@dataclass
class _Utterance:
    frames: deque[bytes]
    audible: deque[bool]
    first_sent_at: float | None = None
    last_sent_at: float | None = None
    first_audible_at: float | None = None
    last_audible_at: float | None = None
    done: bool = False


def _utterance(pcm16_8k: bytes) -> _Utterance:
    chunks = frames(pcm16_to_mulaw(pcm16_8k))
    return _Utterance(frames=deque(chunks), audible=deque(is_audible(c) for c in chunks))


# --- the call -----------------------------------------------------------------------------------


class SimulatedCall:
    """One simulated inbound call: webhook, Media Stream, a scripted caller. Use once.

    `on_event(name, data)` sees the call as it happens: call.answered, call.rejected,
    stream.open, greeting, caller.says, recv.mark, recv.clear, sent.mark, violation and
    call.ended. It runs inside the call's event loop, so it must be quick.

    `realtime=False` sends the caller's speech as fast as the socket takes it (silence between
    turns is still paced at 20 ms, or the server would be flooded) and plays the agent's audio
    the moment it arrives. `timeout_s` bounds each wait: the greeting, each reply.

    `clock` stamps everything the call observes, and the 20 ms frames are paced against it with
    `sleep`; pass both or neither (`time.monotonic` and `asyncio.sleep`). A test passes its own
    pair to get timings that do not depend on how busy the machine is.
    """

    def __init__(
        self,
        base_url: str,
        turns: list[CallerTurn],
        *,
        to_number: str = "+15550100",
        from_number: str = "+15550199",
        auth_token: str | None = None,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        realtime: bool = True,
        reply_silence_s: float = 1.0,
        timeout_s: float = 60,
        expect_greeting: bool = True,
        hangup_abruptly: bool = False,
        public_url: str | None = None,
        on_event: EventCallback | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.public_url = public_url
        self.turns = list(turns)
        self.to_number = to_number
        self.from_number = from_number
        self.auth_token = auth_token
        self.realtime = realtime
        self.reply_silence_s = reply_silence_s
        self.timeout_s = timeout_s
        self.expect_greeting = expect_greeting
        self.hangup_abruptly = hangup_abruptly
        self._on_event = on_event
        self._now = clock
        self._sleep = sleep
        self.result = CallResult(call_sid=_new_sid("CA"), account_sid=account_sid)
        self._stream: RawStream | None = None
        self._playback = Playback(self._echo_mark, realtime=realtime)
        self._utterance: _Utterance | None = None
        self._closed = asyncio.Event()
        self._hanging_up = False
        # Server-to-caller history, in arrival order: the turn results are computed from it.
        self._media_log: list[tuple[float, bytes]] = []
        self._audible_arrivals: list[float] = []
        self._clear_log: list[float] = []
        self._echo_log: list[tuple[float, str]] = []
        self._caller_audio = bytearray()
        self._started = False

    async def run(self) -> CallResult:
        """Place the call, play the script, hang up; return what was observed."""
        if self._started:
            raise RuntimeError("a SimulatedCall places one call; create another for the next")
        self._started = True
        result = self.result
        params = _call_params(
            call_sid=result.call_sid,
            account_sid=result.account_sid,
            from_number=self.from_number,
            to_number=self.to_number,
        )
        webhook_url, answer = await _post_incoming_call(
            self.base_url,
            params,
            auth_token=self.auth_token,
            public_url=self.public_url,
            timeout_s=self.timeout_s,
        )
        result.twiml = answer.twiml
        for violation in answer.violations:
            self._violation(violation)
        if answer.rejected or answer.stream_url is None:
            result.rejected, result.rejected_say = True, answer.say
            self._emit("call.rejected", {"say": answer.say, "twiml": answer.twiml})
            return result
        # Twilio resolves a relative <Stream url> against the webhook it fetched the TwiML from.
        signed_url = urljoin(webhook_url, answer.stream_url)
        result.stream_url, result.custom_parameters = signed_url, answer.parameters
        self._emit("call.answered", {"stream_url": signed_url, "parameters": answer.parameters})
        ws = await _connect_socket(
            _socket_url(signed_url, self.base_url, self.public_url),
            signed_url,
            auth_token=self.auth_token,
            signature=None,
            behind_proxy=self.public_url is not None,
            timeout_s=self.timeout_s,
        )
        result.opened_at = self._now()
        stream = self._stream = RawStream(
            ws,
            stream_sid=_new_sid("MZ"),
            call_sid=result.call_sid,
            account_sid=result.account_sid,
            stream_url=signed_url,
            custom_parameters=answer.parameters,
            twiml=answer.twiml,
        )
        result.stream_sid = stream.stream_sid
        self._emit("stream.open", {"stream_sid": stream.stream_sid, "call_sid": result.call_sid})
        receiver = asyncio.create_task(self._receive(ws), name="simulator-receive")
        clock: asyncio.Task[None] | None = None
        try:
            await stream.send_connected()
            await stream.send_start()
            clock = asyncio.create_task(self._clock(stream), name="simulator-clock")
            await self._script()
        except ConnectionClosed:
            pass  # the server hung up mid-send; the receiver records it
        finally:
            await self._hang_up(stream, clock, receiver)
        self._finish()
        self._emit("call.ended", {"ended_by": result.ended_by, "close_code": result.close_code})
        return result

    # --- the script ---

    async def _script(self) -> None:
        result = self.result
        assert result.opened_at is not None
        first_barges = bool(self.turns) and self.turns[0].barge_in_after_s is not None
        if self.expect_greeting and not first_barges:
            done_at = await self._wait_reply_done(since=result.opened_at)
            result.greeting_timed_out = done_at is None and not self._closed.is_set()
            first = self._first_audible(result.opened_at)
            self._emit(
                "greeting",
                {
                    "done": done_at is not None,
                    "latency_s": None if first is None else first - result.opened_at,
                },
            )
        previous_end = result.opened_at
        for index, turn in enumerate(self.turns):
            if self._closed.is_set():
                break
            outcome = TurnResult(index=index, text=turn.text)
            result.turns.append(outcome)
            if turn.barge_in_after_s is not None:
                outcome.barge_in = True
                reply_at = await self._wait_for(
                    functools.partial(self._first_audible, previous_end), self.timeout_s
                )
                if reply_at is None:
                    outcome.timed_out = not self._closed.is_set()
                else:
                    await self._sleep_until(reply_at + turn.barge_in_after_s)
            outcome.started_at = self._now()
            self._emit("caller.says", {"turn": index, "text": turn.text, "dtmf": turn.dtmf})
            await self._speak(turn, outcome)
            previous_end = outcome.speech_end_at or outcome.started_at
            if turn.wait_for_reply and not self._closed.is_set():
                done_at = await self._wait_reply_done(since=previous_end)
                outcome.reply_done_at = done_at
                outcome.timed_out = outcome.timed_out or (
                    done_at is None and not self._closed.is_set()
                )

    async def _speak(self, turn: CallerTurn, outcome: TurnResult) -> None:
        assert self._stream is not None
        for position, digit in enumerate(turn.dtmf or ""):
            if position and self.realtime:
                await self._sleep_until(self._now() + DTMF_GAP_S)
            await self._stream.send_dtmf(digit)
            outcome.dtmf_sent += digit
            outcome.speech_end_at = self._now()
        if not turn.audio_pcm16_8k:
            return
        utterance = self._utterance = _utterance(turn.audio_pcm16_8k)
        await self._wait_for(lambda: True if utterance.done else None, None)
        outcome.speech_start_at = utterance.first_audible_at or utterance.first_sent_at
        outcome.speech_end_at = (
            utterance.last_audible_at or utterance.last_sent_at or outcome.speech_end_at
        )

    async def _wait_reply_done(self, *, since: float) -> float | None:
        """Wait for audible agent audio after `since`, then for playback to go quiet."""

        def done() -> float | None:
            first = self._first_audible(since)
            end = self._playback.last_audible_end
            if first is None or end < first:
                return None
            return end if self._now() - end >= self.reply_silence_s else None

        return await self._wait_for(done, self.timeout_s)

    def _first_audible(self, after: float) -> float | None:
        position = bisect.bisect_right(self._audible_arrivals, after)
        return self._audible_arrivals[position] if position < len(self._audible_arrivals) else None

    async def _wait_for(
        self, condition: Callable[[], _T | None], limit_s: float | None
    ) -> _T | None:
        """Poll `condition` until it is not None; None when the call ends or time runs out."""
        deadline = None if limit_s is None else self._now() + limit_s
        while not self._closed.is_set():
            value = condition()
            if value is not None:
                return value
            if deadline is not None and self._now() >= deadline:
                return None
            await asyncio.sleep(_POLL_S)
        return None

    async def _sleep_until(self, moment: float) -> None:
        """Wait until `moment` on the call's clock, or until the call ends."""
        # Polled rather than slept: only the frame pacing waits with `sleep`, so that the call's
        # clock moves on in one place.
        await self._wait_for(lambda: True if self._now() >= moment else None, None)

    # --- the 20 ms clock: caller frames out, agent audio played ---

    async def _clock(self, stream: RawStream) -> None:
        next_at = self._now()
        try:
            while not self._closed.is_set():
                if self.realtime or self._utterance is None:
                    # Absolute schedule: a late frame shortens the next wait; drift never adds up.
                    delay = next_at - self._now()
                    if delay > 0:
                        await self._sleep(delay)
                    elif delay < -MAX_SEND_LAG_S:
                        logger.warning(
                            "call %s: simulator clock %.2f s late; rebasing",
                            self.result.call_sid,
                            -delay,
                        )
                        next_at = self._now()
                    next_at += FRAME_S
                else:
                    # Fast mode sends speech back to back, but still yields to the receiver.
                    await asyncio.sleep(0)
                    next_at = self._now() + FRAME_S
                frame, audible, utterance = self._next_frame()
                await stream.send_media(frame)
                now = self._now()
                self._caller_audio += frame
                if utterance is not None:
                    utterance.first_sent_at = utterance.first_sent_at or now
                    utterance.last_sent_at = now
                    if audible:
                        utterance.first_audible_at = utterance.first_audible_at or now
                        utterance.last_audible_at = now
                    if not utterance.frames:
                        utterance.done = True
                        self._utterance = None
                if self.realtime:
                    await self._playback.tick(now)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("call %s: simulator clock failed", self.result.call_sid)
            self._violation("simulator clock failed (see log); call ended")
            self._closed.set()

    def _next_frame(self) -> tuple[bytes, bool, _Utterance | None]:
        utterance = self._utterance
        if utterance is None or not utterance.frames:
            return MULAW_SILENCE_FRAME, False, None
        return utterance.frames.popleft(), utterance.audible.popleft(), utterance

    # --- what the server sends ---

    async def _receive(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                await self._handle(raw, self._now())
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("call %s: simulator receiver failed", self.result.call_sid)
            self._violation("simulator receiver failed (see log)")
        finally:
            if not self._hanging_up and self.result.ended_by is None:
                self.result.ended_by = "server"
            self.result.close_code = ws.close_code
            self._closed.set()

    async def _handle(self, raw: str | bytes, now: float) -> None:
        if isinstance(raw, bytes):
            self._count_received("<binary>")
            self._violation(f"binary frame of {len(raw)} bytes; Twilio takes JSON text frames")
            return
        try:
            message = json.loads(raw)
        except ValueError:
            self._count_received("<invalid>")
            self._violation(f"text frame is not JSON: {raw[:80]!r}")
            return
        event = message.get("event") if isinstance(message, dict) else None
        if not isinstance(event, str):
            self._count_received("<invalid>")
            self._violation(f"message without an event: {raw[:80]!r}")
            return
        self._count_received(event)
        if event not in ("media", "mark", "clear"):
            self._violation(f"unknown event {event!r}; Twilio accepts media, mark and clear")
            return
        stream_sid = message.get("streamSid")
        if stream_sid != self.result.stream_sid:
            # Twilio routes by streamSid; a message for another stream reaches no one.
            self._violation(f"{event} with streamSid {stream_sid!r}, not {self.result.stream_sid}")
            return
        if event == "media":
            self._on_media(message, now)
        elif event == "mark":
            body = message.get("mark")
            name = body.get("name") if isinstance(body, dict) else None
            if not isinstance(name, str) or not name:
                self._violation(f"mark without a name: {raw[:80]!r}")
                return
            self._emit("recv.mark", {"name": name})
            await self._playback.push_mark(name)
        else:
            self._clear_log.append(now)
            self._emit("recv.clear", {})
            await self._playback.clear()

    def _on_media(self, message: dict[str, Any], now: float) -> None:
        body = message.get("media")
        payload = body.get("payload") if isinstance(body, dict) else None
        if not isinstance(payload, str):
            self._violation("media without media.payload")
            return
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self._violation("media.payload is not valid base64")
            return
        if not audio:
            self._violation("media with an empty payload")
            return
        audible = is_audible(audio)
        self._media_log.append((now, audio))
        if audible:
            self._audible_arrivals.append(now)
        self._playback.push_audio(audio, now, audible)

    async def _echo_mark(self, name: str) -> None:
        # After `stop` Twilio says nothing more on the stream.
        if self._stream is None or self._closed.is_set() or self._hanging_up:
            return
        try:
            await self._stream.send_mark(name)
        except ConnectionClosed:
            return
        self._echo_log.append((self._now(), name))
        self._emit("sent.mark", {"name": name})

    # --- hanging up and accounting ---

    async def _hang_up(
        self, stream: RawStream, clock: asyncio.Task[None] | None, receiver: asyncio.Task[None]
    ) -> None:
        self._hanging_up = True
        if clock is not None:
            clock.cancel()
            await asyncio.gather(clock, return_exceptions=True)
        if not self._closed.is_set():
            if self.hangup_abruptly:
                self.result.ended_by = "caller-abrupt"
                await stream.close(abrupt=True)
            else:
                self.result.ended_by = "caller"
                try:
                    await stream.send_stop()
                    await stream.close()
                except ConnectionClosed:
                    pass
        try:
            await asyncio.wait_for(receiver, timeout=5)
        except TimeoutError:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)

    def _finish(self) -> None:
        result = self.result
        assert result.opened_at is not None and self._stream is not None
        ended = self._now()
        result.duration_s = ended - result.opened_at
        result.events_sent = dict(self._stream.events_sent)
        result.agent_audio = b"".join(audio for _, audio in self._media_log)
        result.caller_audio = bytes(self._caller_audio)
        result.marks_echoed = [name for _, name in self._echo_log]

        starts = [t.started_at for t in result.turns if t.started_at is not None]
        greeting_end = starts[0] if starts else math.inf
        result.greeting_audio = self._audio_between(result.opened_at, greeting_end)
        first = self._first_audible(result.opened_at)
        if first is not None and first < greeting_end:
            result.greeting_latency_s = first - result.opened_at

        for position, turn in enumerate(result.turns):
            window_end = starts[position + 1] if position + 1 < len(starts) else math.inf
            begin = turn.started_at if turn.started_at is not None else math.inf
            turn.marks_echoed = [n for t, n in self._echo_log if begin <= t < window_end]
            if turn.speech_end_at is not None:
                reply = self._first_audible(turn.speech_end_at)
                if reply is not None and reply < window_end:
                    turn.first_reply_audio_at = reply
                    turn.voice_to_voice_s = reply - turn.speech_end_at
                turn.reply_audio = self._audio_between(turn.speech_end_at, window_end)
            if turn.barge_in and turn.speech_start_at is not None:
                clears = [t for t in self._clear_log if turn.speech_start_at <= t < window_end]
                if clears:
                    turn.clear_at = clears[0]
                    turn.barge_in_stop_s = clears[0] - turn.speech_start_at

    def _audio_between(self, start: float, end: float) -> bytes:
        return b"".join(audio for t, audio in self._media_log if start < t < end)

    def _count_received(self, event: str) -> None:
        counts = self.result.events_received
        counts[event] = counts.get(event, 0) + 1

    def _violation(self, text: str) -> None:
        violations = self.result.violations
        if len(violations) < _MAX_VIOLATIONS:
            violations.append(text)
            logger.warning("call %s: protocol violation: %s", self.result.call_sid, text)
        self._emit("violation", {"message": text})

    def _emit(self, name: str, data: dict[str, Any]) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(name, data)
        except Exception:
            # A faulty printer must not end the call it is printing.
            logger.exception("call %s: on_event callback failed", self.result.call_sid)


async def place_call(base_url: str, turns: list[CallerTurn], **options: Any) -> CallResult:
    """Place one simulated call against `base_url` and play `turns`.

    `options` are SimulatedCall's keywords (auth_token, realtime, timeout_s, …). Raises
    `CallSetupError` when the webhook or the WebSocket handshake fails.
    """
    return await SimulatedCall(base_url, turns, **options).run()
