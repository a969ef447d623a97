"""STT deployment: Whisper on CPU (Deepgram arrives with its key in a later issue)."""

from __future__ import annotations

from ray import serve

from app.engines import build_stt, prewarm
from app.settings import get_settings
from app.speech.base import Transcript


@serve.deployment(name="stt")
class STTDeployment:
    """Transcribes utterances for every call on the node."""

    async def __init__(self) -> None:
        self.engine = build_stt(get_settings())
        await prewarm(self.engine)

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        """One utterance of 16-bit mono PCM."""
        return await self.engine.transcribe(pcm16, sample_rate)
