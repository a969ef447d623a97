"""The phone's side of a Twilio media stream: the messages Twilio sends, numbered as Twilio
numbers them, and the caller's loudspeaker playing the agent's audio with its marks.

One model of the Twilio peer, shared by the simulated caller (over a real WebSocket) and the call
session's unit tests (in memory), so both hold the server to the same wire behaviour.
"""

from __future__ import annotations

import base64
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.telephony.audio import FRAME_BYTES, TWILIO_SAMPLE_RATE, mulaw_to_pcm16

FRAME_S = FRAME_BYTES / TWILIO_SAMPLE_RATE
# RMS of decoded PCM16 above which a 20 ms frame counts as speech rather than silence or hiss.
AUDIBLE_RMS = 200.0


def is_audible(mulaw: bytes) -> bool:
    """True when any 20 ms stretch of the mu-law audio is louder than `AUDIBLE_RMS`."""
    if not mulaw:
        return False
    pcm = np.frombuffer(mulaw_to_pcm16(mulaw), dtype="<i2").astype(np.float64)
    pad = (-len(pcm)) % FRAME_BYTES
    if pad:
        pcm = np.concatenate([pcm, np.zeros(pad)])
    rms = np.sqrt(np.mean(np.square(pcm.reshape(-1, FRAME_BYTES)), axis=1))
    return bool(np.any(rms >= AUDIBLE_RMS))


class TwilioStream:
    """The inbound messages of one media stream, in Twilio's shapes and sequence numbering."""

    def __init__(
        self,
        *,
        stream_sid: str,
        call_sid: str,
        account_sid: str,
        custom_parameters: dict[str, str],
    ) -> None:
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.custom_parameters = custom_parameters
        self._sequence = 0
        self._chunk = 0

    def connected(self) -> dict[str, Any]:
        """Twilio's first message on every stream (it carries no sequence number)."""
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}

    def event(self, event: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """`{"event", "sequenceNumber", "streamSid", event: body}` with the next number."""
        self._sequence += 1
        message: dict[str, Any] = {
            "event": event,
            "sequenceNumber": str(self._sequence),
            "streamSid": self.stream_sid,
        }
        if body is not None:
            message[event] = body
        return message

    def start(self) -> dict[str, Any]:
        """The `start` message, carrying the TwiML's <Parameter>s."""
        return self.event(
            "start",
            {
                "accountSid": self.account_sid,
                "streamSid": self.stream_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": dict(self.custom_parameters),
                "mediaFormat": {
                    "encoding": "audio/x-mulaw",
                    "sampleRate": TWILIO_SAMPLE_RATE,
                    "channels": 1,
                },
            },
        )

    def media(self, mulaw: bytes, *, timestamp_ms: int | None = None) -> dict[str, Any]:
        """One inbound media message; `timestamp_ms` defaults to the audio time of this chunk."""
        self._chunk += 1
        if timestamp_ms is None:
            timestamp_ms = round((self._chunk - 1) * FRAME_S * 1000)
        return self.event(
            "media",
            {
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(timestamp_ms),
                "payload": base64.b64encode(mulaw).decode("ascii"),
            },
        )

    def dtmf(self, digit: str) -> dict[str, Any]:
        """A key press on the caller's phone."""
        return self.event("dtmf", {"track": "inbound_track", "digit": digit})

    def mark(self, name: str) -> dict[str, Any]:
        """A mark echoed: playback reached it (or the queue was cleared)."""
        return self.event("mark", {"name": name})

    def stop(self) -> dict[str, Any]:
        """The caller hung up."""
        return self.event("stop", {"accountSid": self.account_sid, "callSid": self.call_sid})


@dataclass
class _Mark:
    name: str


class Playback:
    """The caller's phone playing the agent's audio: 20 ms per tick, marks in line with it.

    State changes are synchronous and the echoes are sent afterwards, so a `clear` arriving
    while a tick is echoing cannot interleave with the queue's bookkeeping.
    """

    def __init__(self, echo: Callable[[str], Awaitable[None]], *, realtime: bool) -> None:
        self._echo = echo
        self._realtime = realtime
        self._queue: deque[bytes | _Mark] = deque()
        # Marks whose audio finishes playing during the current tick; echoed at the next one.
        self._due: list[str] = []
        self.last_audible_end = -math.inf
        self.played_bytes = 0  # audio the caller has heard so far

    @property
    def idle(self) -> bool:
        """Nothing left to play or to echo."""
        return not self._queue and not self._due

    @property
    def queued_bytes(self) -> int:
        return sum(len(item) for item in self._queue if isinstance(item, bytes))

    def push_audio(self, mulaw: bytes, now: float, audible: bool) -> None:
        if not self._realtime:
            # Fast mode: the phone "plays" audio the moment it arrives.
            if audible:
                self.last_audible_end = now
            return
        self._queue.append(mulaw)

    async def push_mark(self, name: str) -> None:
        if not self._realtime:
            await self._echo(name)
            return
        self._queue.append(_Mark(name))

    async def tick(self, now: float) -> None:
        """Play the next 20 ms; echo the marks whose audio has finished."""
        echo_now, self._due = self._due, []
        played = bytearray()
        while self._queue:
            item = self._queue[0]
            if isinstance(item, _Mark):
                self._queue.popleft()
                # A mark right behind audio played in this tick is reached when that audio ends.
                (self._due if played else echo_now).append(item.name)
                continue
            budget = FRAME_BYTES - len(played)
            if budget == 0:
                break
            played += item[:budget]
            if len(item) > budget:
                self._queue[0] = item[budget:]
            else:
                self._queue.popleft()
        self.played_bytes += len(played)
        if played and is_audible(bytes(played)):
            self.last_audible_end = now + len(played) / TWILIO_SAMPLE_RATE
        for name in echo_now:
            await self._echo(name)

    async def clear(self) -> list[str]:
        """Drop queued audio and echo every pending mark at once, in order, as Twilio does."""
        pending = self._due + [item.name for item in self._queue if isinstance(item, _Mark)]
        self._due = []
        self._queue.clear()
        for name in pending:
            await self._echo(name)
        return pending
