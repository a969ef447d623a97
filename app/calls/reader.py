"""The reader: one media stream's wire messages in, the call's events out.

It parses each Twilio message, refuses one that belongs to another stream, and cuts the caller's
mu-law audio into 20 ms frames of 16-bit PCM, whatever size the media payloads come in.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from app.telephony.audio import FRAME_BYTES, mulaw_to_pcm16
from app.telephony.messages import (
    ConnectedEvent,
    DtmfEvent,
    MarkEvent,
    MediaEvent,
    ProtocolError,
    StartEvent,
    StopEvent,
    parse_inbound,
)

PCM_FRAME_BYTES = FRAME_BYTES * 2  # 20 ms of 8 kHz 16-bit PCM


class SocketClosed(Exception):
    """The caller's side of the media stream went away."""


class MediaSocket(Protocol):
    """The WebSocket of one Twilio media stream, as the session needs it."""

    async def receive_text(self) -> str:
        """Next text frame; raises SocketClosed when the peer is gone."""
        ...

    async def send_text(self, data: str) -> None:
        """Send one text frame."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the socket (idempotent)."""
        ...


@dataclass(frozen=True, slots=True)
class CallerAudio:
    """20 ms of the caller's voice (or silence), 8 kHz 16-bit PCM."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class MarkPlayed:
    """Twilio played our audio up to the mark of this name (or dropped it on a clear)."""

    name: str


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """The caller pressed a key."""

    digit: str


StreamEvent = CallerAudio | MarkPlayed | KeyPressed


class StreamReader:
    """Reads one media stream; `start()` first, then `events()`."""

    def __init__(self, socket: MediaSocket) -> None:
        self._socket = socket
        self._pcm = bytearray()
        self.stream_sid = ""

    async def start(self) -> StartEvent:
        """The stream's `start` message (a `connected` may come before it, nothing else)."""
        while True:
            event = parse_inbound(await self._socket.receive_text())
            if isinstance(event, ConnectedEvent):
                continue
            if not isinstance(event, StartEvent):
                raise ProtocolError(f"expected 'start' before '{event.event}'")
            self.stream_sid = event.streamSid
            return event

    async def events(self) -> AsyncIterator[StreamEvent]:
        """The stream's events until Twilio's `stop` (the caller hung up, or the call moved on,
        as after a transfer); raises ProtocolError or SocketClosed."""
        while True:
            event = parse_inbound(await self._socket.receive_text())
            if isinstance(event, MediaEvent):
                self._check_stream(event.streamSid)
                self._pcm += mulaw_to_pcm16(event.audio)
                while len(self._pcm) >= PCM_FRAME_BYTES:
                    frame = bytes(self._pcm[:PCM_FRAME_BYTES])
                    del self._pcm[:PCM_FRAME_BYTES]
                    yield CallerAudio(frame)
            elif isinstance(event, MarkEvent):
                self._check_stream(event.streamSid)
                yield MarkPlayed(event.mark.name)
            elif isinstance(event, DtmfEvent):
                self._check_stream(event.streamSid)
                yield KeyPressed(event.dtmf.digit)
            elif isinstance(event, StopEvent):
                return
            elif isinstance(event, StartEvent):
                raise ProtocolError("a second 'start' on the same stream")

    def _check_stream(self, stream_sid: str) -> None:
        if stream_sid != self.stream_sid:
            raise ProtocolError(f"message for stream {stream_sid} on stream {self.stream_sid}")
