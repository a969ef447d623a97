"""TTS deployment: Piper on CPU, streaming one chunk per sentence piece."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ray import serve

from app.engines import build_tts, prewarm
from app.settings import get_settings
from app.speech.base import AudioChunk


@serve.deployment(name="tts")
class TTSDeployment:
    """Synthesizes speech for every call on the node."""

    async def __init__(self) -> None:
        self.engine = build_tts(get_settings())
        await prewarm(self.engine)

    async def stream(self, text: str, voice: str | None = None) -> AsyncIterator[AudioChunk]:
        """PCM chunks of `text`, the first as soon as it exists."""
        async for chunk in self.engine.stream(text, voice):
            yield chunk
