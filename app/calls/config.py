"""The settings one call reads, gathered once per replica so a session never sees the whole
settings object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.calls.endpointing import TurnTiming
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Listening:
    """How the call hears the caller: voice activity, turn ends, barge-in, speculation."""

    vad_engine: Literal["silero", "webrtc"] = "silero"
    vad_aggressiveness: int = 2  # webrtc only
    timing: TurnTiming = field(default_factory=TurnTiming)
    barge_in_min_speech_ms: int = 160
    backchannel_max_ms: int = 700
    # Speculation trades CPU for latency: it stops while this many utterances of the replica's
    # calls already wait on STT, since a guess that may be thrown away only delays them.
    speculate_max_stt_inflight: int = 3


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long each stage of a reply may take before the agent apologises (seconds)."""

    stt_s: float = 6.0
    rag_s: float = 1.0  # then the turn is answered without its passages
    llm_first_token_s: float = 8.0
    llm_total_s: float = 25.0
    tts_s: float = 8.0


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What one caller's media stream may cost a replica, whatever its sender does."""

    idle_s: float = 10.0  # no audio for this long after `start`: nobody is on the line
    # Twilio sends audio in real time; a sender running this far ahead is not a phone call.
    burst_s: float = 2.0


@dataclass(frozen=True, slots=True)
class CallConfig:
    """Everything a call session is configured by."""

    listening: Listening = field(default_factory=Listening)
    deadlines: Deadlines = field(default_factory=Deadlines)
    stream: StreamLimits = field(default_factory=StreamLimits)
    start_timeout_s: float = 10.0  # Twilio sends `start` right after connecting
    max_call_s: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CallConfig:
        """The call's part of the product settings."""
        return cls(
            listening=Listening(
                vad_engine=settings.speech.vad_engine,
                vad_aggressiveness=settings.speech.vad_aggressiveness,
                timing=TurnTiming(
                    pause_ms=settings.speech.turn_pause_ms,
                    end_ms=settings.speech.turn_end_ms,
                    end_incomplete_ms=settings.speech.turn_end_incomplete_ms,
                    max_turn_ms=round(settings.speech.max_utterance_s * 1000),
                ),
                barge_in_min_speech_ms=settings.speech.barge_in_min_speech_ms,
                backchannel_max_ms=settings.speech.backchannel_max_ms,
                speculate_max_stt_inflight=settings.speech.speculate_max_stt_inflight,
            ),
            deadlines=Deadlines(
                stt_s=settings.speech.stt_timeout_s,
                rag_s=settings.knowledge.rag_timeout_s,
                llm_first_token_s=settings.models.llm_first_token_timeout_s,
                llm_total_s=settings.models.llm_total_timeout_s,
                tts_s=settings.speech.tts_timeout_s,
            ),
            stream=StreamLimits(
                idle_s=settings.telephony.media_idle_timeout_s,
                burst_s=settings.telephony.audio_burst_s,
            ),
            max_call_s=settings.telephony.max_call_seconds,
        )
