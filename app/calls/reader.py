"""The reader: one media stream's wire messages in, the call's events out.

It parses each Twilio message, refuses one that belongs to another stream, and cuts the caller's
mu-law audio into 20 ms frames of 16-bit PCM, whatever size the media payloads come in. It also
holds the stream to what a phone call can be: audio arriving no faster than real time (beyond a
small burst), and never silent for long - a sender breaking either is not Twilio.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from app.calls.config import StreamLimits
from app.telephony.audio import FRAME_BYTES, TWILIO_SAMPLE_RATE, mulaw_to_pcm16
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

    def __init__(self, socket: MediaSocket, limits: StreamLimits | None = None) -> None:
        self._socket = socket
        self._limits = limits or StreamLimits()
        self._pcm = bytearray()
        self.stream_sid = ""
        # On the event loop's clock, which asyncio's timeouts use too.
        self._last_media_at = 0.0
        self._first_media_at: float | None = None
        self._audio_s = 0.0

    async def start(self) -> StartEvent:
        """The stream's `start` message (a `connected` may come before it, nothing else)."""
        while True:
            event = parse_inbound(await self._socket.receive_text())
            if isinstance(event, ConnectedEvent):
                continue
            if not isinstance(event, StartEvent):
                raise ProtocolError(f"expected 'start' before '{event.event}'")
            self.stream_sid = event.streamSid
            self._last_media_at = asyncio.get_running_loop().time()
            return event

    async def events(self) -> AsyncIterator[StreamEvent]:
        """The stream's events until Twilio's `stop` (the caller hung up, or the call moved on,
        as after a transfer); raises ProtocolError or SocketClosed."""
        while True:
            event = parse_inbound(await self._receive())
            if isinstance(event, MediaEvent):
                self._check_stream(event.streamSid)
                self._check_pace(len(event.audio))
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

    async def _receive(self) -> str:
        try:
            async with asyncio.timeout_at(self._last_media_at + self._limits.idle_s):
                return await self._socket.receive_text()
        except TimeoutError:
            raise ProtocolError(f"no audio for {self._limits.idle_s:g} s") from None

    def _check_pace(self, mulaw_bytes: int) -> None:
        now = asyncio.get_running_loop().time()
        self._last_media_at = now
        if self._first_media_at is None:
            self._first_media_at = now
        self._audio_s += mulaw_bytes / TWILIO_SAMPLE_RATE
        ahead = self._audio_s - (now - self._first_media_at)
        if ahead > self._limits.burst_s:
            raise ProtocolError(f"audio arrives faster than real time ({ahead:.1f} s ahead)")

    def _check_stream(self, stream_sid: str) -> None:
        if stream_sid != self.stream_sid:
            raise ProtocolError(f"message for stream {stream_sid} on stream {self.stream_sid}")
