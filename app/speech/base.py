"""The speech interfaces every STT and TTS engine implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Word:
    """One recognised word with its timing inside the utterance (seconds)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Transcript:
    """What an STT engine heard in one utterance."""

    text: str
    confidence: float = 1.0
    words: tuple[Word, ...] = field(default_factory=tuple)


@runtime_checkable
class SpeechToText(Protocol):
    """Turns one utterance of 16-bit mono PCM into text."""

    name: str

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        """Transcribe little-endian 16-bit mono PCM sampled at `sample_rate`."""
        ...

    async def prewarm(self) -> None:
        """Load and exercise the model before the first call, so no caller pays for it."""
        ...

    async def aclose(self) -> None:
        """Release threads, connections and models once the work in flight is done."""
        ...


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A piece of synthesized speech: 16-bit little-endian mono PCM at `sample_rate`."""

    pcm16: bytes
    sample_rate: int


@runtime_checkable
class TextToSpeech(Protocol):
    """Speaks text as a stream of PCM chunks, the first one as early as possible."""

    name: str

    def stream(self, text: str, voice: str | None = None) -> AsyncIterator[AudioChunk]:
        """Yield audio for `text`; cancelling the iteration stops synthesis."""
        ...

    async def prewarm(self) -> None:
        """Load and exercise the voice before the first call, so no caller pays for it."""
        ...

    async def aclose(self) -> None:
        """Release threads, connections and models once the work in flight is done."""
        ...
