"""TTS deployment: Piper on CPU, streaming one chunk per sentence piece."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ray import serve

from app.engines import build_tts
from app.settings import Settings
from app.speech.base import AudioChunk


@serve.deployment(name="tts")
class TTSDeployment:
    """Synthesizes speech for every call on the node."""

    async def __init__(self, settings: Settings) -> None:
        self.engine = build_tts(settings)
        await self.engine.prewarm()

    async def __del__(self) -> None:
        # Serve awaits this when the replica stops (scale-down, redeploy, shutdown).
        await self.engine.aclose()

    async def stream(self, text: str, voice: str | None = None) -> AsyncIterator[AudioChunk]:
        """PCM chunks of `text`, the first as soon as it exists."""
        async for chunk in self.engine.stream(text, voice):
            yield chunk
