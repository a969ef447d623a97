"""STT deployment: Whisper on CPU (Deepgram arrives with its key in a later issue)."""

from __future__ import annotations

from ray import serve

from app.engines import build_stt
from app.settings import Settings
from app.speech.base import Transcript


@serve.deployment(name="stt")
class STTDeployment:
    """Transcribes utterances for every call on the node."""

    async def __init__(self, settings: Settings) -> None:
        self.engine = build_stt(settings)
        await self.engine.prewarm()

    async def __del__(self) -> None:
        # Serve awaits this when the replica stops (scale-down, redeploy, shutdown).
        await self.engine.aclose()

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        """One utterance of 16-bit mono PCM."""
        return await self.engine.transcribe(pcm16, sample_rate)
