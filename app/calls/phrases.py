"""Pre-synthesized phone audio for fixed phrases (greetings, apologies), so they start at once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from app.speech.base import TextToSpeech
from app.speech.spoken_text import speakable
from app.telephony.audio import PhoneFrameEncoder


class PhraseCache:
    """Maps (text, voice) to 20 ms mu-law frames; synthesizes each phrase once."""

    def __init__(self, tts: TextToSpeech, *, capacity: int = 256) -> None:
        self._tts = tts
        self._capacity = capacity
        self._audio: OrderedDict[tuple[str, str | None], list[bytes]] = OrderedDict()
        self._inflight: dict[tuple[str, str | None], asyncio.Task[list[bytes]]] = {}
        self._warming: set[asyncio.Task[list[bytes]]] = set()

    async def get(self, text: str, voice: str | None = None) -> list[bytes]:
        """The phrase as phone frames, synthesized now if it is not cached yet."""
        key = (text, voice)
        if key in self._audio:
            self._audio.move_to_end(key)
            return self._audio[key]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._synthesize(text, voice))
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        audio = await asyncio.shield(task)
        self._audio[key] = audio
        while len(self._audio) > self._capacity:
            self._audio.popitem(last=False)
        return audio

    def warm(self, text: str, voice: str | None = None) -> None:
        """Start synthesizing a phrase in the background (the call that needs it comes soon)."""
        if (text, voice) in self._audio or (text, voice) in self._inflight:
            return
        task = asyncio.ensure_future(self.get(text, voice))
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def _synthesize(self, text: str, voice: str | None) -> list[bytes]:
        encoder = PhoneFrameEncoder()
        out: list[bytes] = []
        # A business's greeting may hold times or prices ("open 7am-6pm"): the voice reads them
        # as said, the cache and the transcript keep the phrase as written.
        async for chunk in self._tts.stream(speakable(text), voice):
            out += encoder.push(chunk.pcm16, chunk.sample_rate)
        return out + encoder.flush()
