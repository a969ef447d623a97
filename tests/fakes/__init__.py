"""Scripted engines for tests: the call loop runs against these without models or Ray."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import numpy as np

from app.calls.recorder import CallStart, CallSummary, TurnRecord
from app.llm.base import (
    Confidence,
    LLMEvent,
    Message,
    TextDelta,
    Tier,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)
from app.speech.base import AudioChunk, Transcript

SPEECH_RATE = 16000


def tone(seconds: float, *, rate: int = 8000, freq: float = 220.0, amp: float = 0.3) -> bytes:
    """A voiced-sounding test signal: a harmonic-rich tone with a slow amplitude wobble."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 8))
    wave *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    wave = wave / np.max(np.abs(wave)) * amp
    return (wave * 32767).astype("<i2").tobytes()


def silence(seconds: float, *, rate: int = 8000) -> bytes:
    """Digital silence."""
    return b"\x00\x00" * int(seconds * rate)


class Lifecycle:
    """Fakes load nothing: warming and closing are counted, so tests can see them called."""

    warmed: int = 0
    closed: int = 0

    async def prewarm(self, *_: object) -> None:
        self.warmed += 1

    async def aclose(self) -> None:
        self.closed += 1


@dataclass
class FakeSTT(Lifecycle):
    """Answers each utterance with the next scripted transcript (or a function of the audio)."""

    script: list[str] = field(default_factory=list)
    by_audio: Callable[[bytes], str] | None = None
    delay_s: float = 0.05
    name: str = "fake-stt"
    calls: list[int] = field(default_factory=list)

    async def transcribe(self, pcm16: bytes, sample_rate: int) -> Transcript:
        self.calls.append(len(pcm16))
        await asyncio.sleep(self.delay_s)
        if self.by_audio is not None:
            return Transcript(self.by_audio(pcm16))
        return Transcript(self.script.pop(0) if self.script else "")


@dataclass
class FakeLLM(Lifecycle):
    """Streams scripted replies word by word; `reply_for` may pick one from the last message.

    A scripted reply that is a ToolCall is sent as that call; `confidence` is reported after
    the first words when set (as the local SLM does).
    """

    replies: list[str | ToolCall] = field(default_factory=list)
    reply_for: Callable[[list[Message]], str] | None = None
    first_token_s: float = 0.05
    per_token_s: float = 0.01
    name: str = "fake-llm"
    confidence: float | None = None
    fail: Exception | None = None
    seen: list[list[Message]] = field(default_factory=list)
    offered: list[list[ToolSpec] | None] = field(default_factory=list)
    choices: list[ToolChoice] = field(default_factory=list)
    shown: list[list[ToolSpec] | None] = field(default_factory=list)
    prefilled: list[list[Message]] = field(default_factory=list)
    cancelled: int = 0

    async def prefill(self, messages: list[Message], shown: list[ToolSpec] | None = None) -> None:
        self.prefilled.append(list(messages))

    async def stream(
        self,
        messages: list[Message],
        tools: list[ToolSpec] | None = None,
        tier: Tier = Tier.SLM,
        tool_choice: ToolChoice = "auto",
        shown: list[ToolSpec] | None = None,
    ) -> AsyncIterator[LLMEvent]:
        self.seen.append(list(messages))
        self.choices.append(tool_choice)
        self.offered.append(tools)
        self.shown.append(shown)
        if self.reply_for is not None:
            reply: str | ToolCall = self.reply_for(messages)
        else:
            reply = self.replies.pop(0) if self.replies else "Okay."
        try:
            await asyncio.sleep(self.first_token_s)
            if self.fail is not None:
                raise self.fail
            if self.confidence is not None:
                yield Confidence(self.confidence, 8)
            if isinstance(reply, ToolCall):
                yield reply
                yield Usage(model=self.name, prompt_tokens=10, completion_tokens=12)
                return
            text = reply
            words = text.split(" ")
            for i, word in enumerate(words):
                yield TextDelta(word if i == 0 else " " + word)
                await asyncio.sleep(self.per_token_s)
            yield Usage(model=self.name, prompt_tokens=10, completion_tokens=len(words))
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise


@dataclass
class FakeTTS(Lifecycle):
    """Speaks `seconds_per_word` of tone per word, in 100 ms chunks."""

    seconds_per_word: float = 0.25
    sample_rate: int = SPEECH_RATE
    first_chunk_s: float = 0.02
    name: str = "fake-tts"
    spoken: list[str] = field(default_factory=list)

    async def stream(self, text: str, voice: str | None = None) -> AsyncIterator[AudioChunk]:
        self.spoken.append(text)
        audio = tone(len(text.split()) * self.seconds_per_word, rate=self.sample_rate, freq=330)
        step = self.sample_rate // 10 * 2
        await asyncio.sleep(self.first_chunk_s)
        for i in range(0, len(audio), step):
            yield AudioChunk(audio[i : i + step], self.sample_rate)
            await asyncio.sleep(0)


@dataclass
class StallingLLM(FakeLLM):
    """Never produces a token: exercises the first-token deadline."""

    async def stream(
        self,
        messages: list[Message],
        tools: list[ToolSpec] | None = None,
        tier: Tier = Tier.SLM,
        tool_choice: ToolChoice = "auto",
        shown: list[ToolSpec] | None = None,
    ) -> AsyncIterator[LLMEvent]:
        await asyncio.sleep(3600)
        yield TextDelta("never")


class MemoryRecorder:
    """Keeps what a call recorded, for assertions."""

    def __init__(self) -> None:
        self.started: list[CallStart] = []
        self.turns: list[TurnRecord] = []
        self.ended: list[CallSummary] = []

    async def call_started(self, start: CallStart) -> None:
        self.started.append(start)

    async def turn_finished(self, record: TurnRecord) -> None:
        self.turns.append(record)

    async def call_ended(self, summary: CallSummary) -> None:
        self.ended.append(summary)
