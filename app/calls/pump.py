"""The pump: sends the audio of the reply that holds the floor, with a mark every 200 ms, so
Twilio's echoes tell the call what the caller actually heard."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from app.calls.ledger import Turn
from app.calls.reader import MediaSocket
from app.telephony.messages import clear_message, mark_message, media_message


class Pump:
    """Frames and marks of the speaking turn's reply → the socket; `clear` when told."""

    def __init__(
        self,
        socket: MediaSocket,
        *,
        stream_sid: str,
        speaking: Callable[[], Turn | None],
        on_first_audio: Callable[[Turn], None],
    ) -> None:
        self._socket = socket
        self._stream_sid = stream_sid
        self._speaking = speaking
        self._on_first_audio = on_first_audio
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # a clear never lands between a frame and its mark

    def wake(self) -> None:
        """Something may be ready to send: new audio, a released reply, a new speaker."""
        self._wake.set()

    async def run(self) -> None:
        """Send audio as it becomes available, until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            turn = self._speaking()
            if turn is None:
                continue
            reply = turn.reply
            while reply.released and reply.sent < len(reply.frames) and self._speaking() is turn:
                index = reply.sent
                mark = reply.mark_after(index)
                reply.sent += 1
                await self._send(media_message(self._stream_sid, reply.frames[index]))
                if reply.first_audio_sent_at is None:
                    self._on_first_audio(turn)
                if mark is not None:
                    await self._send(mark_message(self._stream_sid, mark))

    async def clear(self) -> None:
        """Make Twilio drop the audio it has not played yet."""
        await self._send(clear_message(self._stream_sid))

    async def _send(self, data: str) -> None:
        async with self._lock:
            await self._socket.send_text(data)
