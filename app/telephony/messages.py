"""The Twilio Media Streams WebSocket protocol: inbound events parsed, outbound messages built."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

# Twilio sends 20 ms (160 bytes) per media message; anything up to this bound is tolerated so a
# different chunking does not break a call, while a runaway frame is refused.
MAX_MEDIA_BYTES = 16000
# No Media Streams message comes near this (Twilio's are ASCII JSON); a longer frame is refused.
MAX_FRAME_CHARS = 64 * 1024

SUPPORTED_ENCODING = "audio/x-mulaw"
SUPPORTED_SAMPLE_RATE = 8000
SUPPORTED_CHANNELS = 1

# Sequence numbers, chunks and timestamps arrive as JSON strings ("3"); pydantic's lax mode turns
# numeric strings into ints, so the models expose ints whichever form Twilio used.
Count = Annotated[int, Field(ge=0)]
# Twilio's ids are two letters and 32 hex digits (CA…, MZ…, AC…). Checked before anything logs
# or stores one, so a client cannot smuggle text into logs or keys through an id.
SID_PATTERN = r"^[A-Z]{2}[0-9a-fA-F]{32}$"
Sid = Annotated[str, Field(pattern=SID_PATTERN)]


class ProtocolError(ValueError):
    """A WebSocket message that does not follow the Twilio Media Streams protocol."""


class _Wire(BaseModel):
    # Twilio adds fields over time; unknown ones are dropped rather than failing a live call.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ConnectedEvent(_Wire):
    """First message on the socket: names the protocol that follows."""

    event: Literal["connected"]
    protocol: str
    version: str


class MediaFormat(_Wire):
    """Audio format of the stream; only 8 kHz mono mu-law is supported."""

    encoding: str
    sampleRate: int
    channels: int

    @model_validator(mode="after")
    def _supported(self) -> MediaFormat:
        if (self.encoding, self.sampleRate, self.channels) != (
            SUPPORTED_ENCODING,
            SUPPORTED_SAMPLE_RATE,
            SUPPORTED_CHANNELS,
        ):
            raise ValueError(
                f"unsupported media format {self.encoding} at {self.sampleRate} Hz with "
                f"{self.channels} channel(s); expected {SUPPORTED_ENCODING} at "
                f"{SUPPORTED_SAMPLE_RATE} Hz mono"
            )
        return self


class StartPayload(_Wire):
    """Stream metadata: which call, which tracks, the TwiML `<Parameter>` values."""

    accountSid: Sid
    streamSid: Sid
    callSid: Sid
    tracks: list[str]
    customParameters: dict[str, str] = Field(default_factory=dict)
    mediaFormat: MediaFormat


class StartEvent(_Wire):
    """Sent once, right after `connected`."""

    event: Literal["start"]
    sequenceNumber: Count
    streamSid: Sid
    start: StartPayload


class MediaPayload(_Wire):
    """One chunk of caller audio, base64 mu-law."""

    track: str
    chunk: Count
    timestamp: Count
    payload: str

    _audio: bytes = PrivateAttr(default=b"")

    @model_validator(mode="after")
    def _decode_audio(self) -> MediaPayload:
        # Decoded once here, so a bad payload fails at parse time and readers pay nothing.
        self._audio = _decode_payload(self.payload)
        return self

    @property
    def audio(self) -> bytes:
        """The decoded mu-law bytes (8 kHz mono)."""
        return self._audio


class MediaEvent(_Wire):
    """Caller audio, typically every 20 ms."""

    event: Literal["media"]
    sequenceNumber: Count
    streamSid: Sid
    media: MediaPayload

    @property
    def audio(self) -> bytes:
        """The decoded mu-law bytes of this chunk (8 kHz mono)."""
        return self.media.audio


class DtmfPayload(_Wire):
    """A key the caller pressed."""

    track: str
    digit: str = Field(pattern=r"^[0-9*#]$")


class DtmfEvent(_Wire):
    """The caller pressed a key."""

    event: Literal["dtmf"]
    sequenceNumber: Count
    streamSid: Sid
    dtmf: DtmfPayload


class MarkPayload(_Wire):
    """The name we gave the mark when we sent it."""

    name: str = Field(max_length=64)


class MarkEvent(_Wire):
    """Playback reached a mark we sent (or the mark was flushed by `clear`)."""

    event: Literal["mark"]
    sequenceNumber: Count
    streamSid: Sid
    mark: MarkPayload


class StopPayload(_Wire):
    """Which call the stopped stream belonged to."""

    accountSid: Sid
    callSid: Sid


class StopEvent(_Wire):
    """The stream ended (caller hung up, or the call moved on)."""

    event: Literal["stop"]
    sequenceNumber: Count
    streamSid: Sid
    stop: StopPayload


InboundEvent = Annotated[
    ConnectedEvent | StartEvent | MediaEvent | DtmfEvent | MarkEvent | StopEvent,
    Field(discriminator="event"),
]

_INBOUND: TypeAdapter[InboundEvent] = TypeAdapter(InboundEvent)
EVENT_NAMES = ("connected", "start", "media", "dtmf", "mark", "stop")


def parse_inbound(raw: str | bytes) -> InboundEvent:
    """Parse one text frame from Twilio into its event model.

    Raises:
        ProtocolError: the frame is not JSON, not an object, has no known `event`, breaks the
            event's schema, or carries audio that is not base64 mu-law of a sane size.
    """
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"message is not UTF-8 text: {exc.reason}") from exc
    except json.JSONDecodeError as exc:
        raise ProtocolError(
            f"message is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"message must be a JSON object, got {_json_type(data)}")
    if "event" not in data:
        raise ProtocolError("message has no 'event' field")
    event = data["event"]
    if event not in EVENT_NAMES:
        raise ProtocolError(f"unknown event {event!r}; expected one of {', '.join(EVENT_NAMES)}")
    try:
        return _INBOUND.validate_python(data)
    except ValidationError as exc:
        raise ProtocolError(f"invalid {event!r} message: {_describe(exc)}") from exc


def media_message(stream_sid: str, mulaw: bytes) -> str:
    """Audio to play to the caller: raw 8 kHz mono mu-law, no header bytes.

    Raises:
        ValueError: `mulaw` is empty (there is nothing to play).
    """
    if not mulaw:
        raise ValueError("media_message needs at least one byte of mu-law audio")
    payload = base64.b64encode(mulaw).decode("ascii")
    return _dumps({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}})


def mark_message(stream_sid: str, name: str) -> str:
    """Ask Twilio to echo `name` back once the audio sent before it has played."""
    return _dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear_message(stream_sid: str) -> str:
    """Drop all audio queued for playback (barge-in); pending marks come back at once."""
    return _dumps({"event": "clear", "streamSid": stream_sid})


def _decode_payload(value: str) -> bytes:
    try:
        audio = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"payload is not valid base64 ({exc})") from exc
    if not audio:
        raise ValueError("payload is empty; expected at least one byte of mu-law audio")
    if len(audio) > MAX_MEDIA_BYTES:
        raise ValueError(
            f"payload decodes to {len(audio)} bytes; at most {MAX_MEDIA_BYTES} are accepted"
        )
    return audio


def _describe(exc: ValidationError) -> str:
    return "; ".join(_describe_one(err) for err in exc.errors(include_url=False))


def _describe_one(err: ErrorDetails) -> str:
    # The first element of the location is the union's tag (the event name); drop it.
    where = ".".join(str(part) for part in err["loc"][1:]) or "message"
    if err["type"] == "missing":
        return f"field '{where}' is missing"
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    message = str(ctx["error"]) if err["type"] == "value_error" and "error" in ctx else err["msg"]
    return f"field '{where}': {message}"


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))
