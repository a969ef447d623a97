"""Adapters that make Serve deployment handles look like the engines in `app/`.

The call loop cannot tell an in-process engine from one behind a DeploymentHandle. Closing one
of these streams cancels the remote request, so barge-in stops work on the other replica too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
from ray.serve.handle import DeploymentHandle

from app.llm.base import LLMEvent, Message, Tier, ToolChoice, ToolSpec
from app.rag.embedder import Purpose
from app.speech.base import AudioChunk, Transcript


class RemoteEngine:
    """An engine whose lifecycle belongs to the deployment that serves it."""

    async def prewarm(self, *_: object) -> None:
        """Nothing here: the deployment warms its engine before it takes traffic."""

    async def aclose(self) -> None:
        """Nothing here: the deployment closes its engine when its replica stops."""


class HandleSTT(RemoteEngine):
    """SpeechToText served by the STT deployment."""

    def __init__(self, handle: DeploymentHandle, name: str = "whisper") -> None:
        self._handle = handle
        self.name = name

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        """Transcribe on an STT replica."""
        response = self._handle.transcribe.remote(pcm16, sample_rate)
        try:
            result: Transcript = await response
        except BaseException:
            response.cancel()
            raise
        return result


class HandleLLM(RemoteEngine):
    """LanguageModel served by the SLM deployment."""

    def __init__(self, handle: DeploymentHandle, name: str = "slm") -> None:
        self._calls = handle
        self._handle = handle.options(stream=True)
        self.name = name

    async def prefill(self, messages: list[Message], shown: list[ToolSpec] | None = None) -> None:
        """Read a conversation's prompt so far into an SLM replica's cache."""
        response = self._calls.prefill.remote(messages, shown)
        try:
            await response
        except BaseException:
            response.cancel()
            raise

    async def stream(
        self,
        messages: list[Message],
        tools: list[ToolSpec] | None = None,
        tier: Tier = Tier.SLM,
        tool_choice: ToolChoice = "auto",
        shown: list[ToolSpec] | None = None,
    ) -> AsyncIterator[LLMEvent]:
        """Stream the deployment's events."""
        generator = self._handle.stream.remote(messages, tools, tier, tool_choice, shown)
        try:
            async for event in generator:
                yield event
        finally:
            generator.cancel()


class HandleTTS(RemoteEngine):
    """TextToSpeech served by the TTS deployment."""

    def __init__(self, handle: DeploymentHandle, name: str = "piper") -> None:
        self._handle = handle.options(stream=True)
        self.name = name

    async def stream(self, text: str, voice: str | None = None) -> AsyncIterator[AudioChunk]:
        """Stream audio chunks from a TTS replica."""
        generator = self._handle.stream.remote(text, voice)
        try:
            async for chunk in generator:
                yield chunk
        finally:
            generator.cancel()


class HandleEmbedder(RemoteEngine):
    """Embedder served by the embedder deployment, which batches texts across callers."""

    def __init__(self, handle: DeploymentHandle, *, name: str, dimension: int) -> None:
        self._handle = handle
        self.name = name
        self.dimension = dimension

    async def embed(self, texts: list[str], *, purpose: Purpose = "document") -> np.ndarray:
        """Embed on an embedder replica."""
        response = self._handle.embed.remote(texts, purpose)
        try:
            result: np.ndarray = await response
        except BaseException:
            response.cancel()
            raise
        return result
