"""Every environment variable the product reads, in one pydantic-settings object."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Velox configuration. Each field maps to the upper-case env var of the same name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Serving
    velox_host: str = "127.0.0.1"
    velox_port: int = 8000
    velox_public_url: str | None = Field(
        default=None,
        description="Public base URL Twilio reaches (https://…); else taken from the request.",
    )
    velox_data_dir: Path = Path("var")

    # Twilio
    twilio_auth_token: SecretStr | None = None
    twilio_account_sid: str | None = None

    # The agent that answers until the data layer assigns agents to numbers.
    velox_agent_name: str = "Rosa's Bakery"
    velox_greeting: str = "Hi, thanks for calling Rosa's Bakery. How can I help you today?"
    velox_system_prompt: str = (
        "You answer the phone for Rosa's Bakery, 12 Main Street. "
        "Open 7 am to 6 pm, Monday to Saturday; closed Sunday. "
        "Free parking behind the shop. We bake bread, croissants and custom cakes; "
        "cake orders need two days' notice. "
        "Reply in one or two short, friendly spoken sentences."
    )
    velox_voice: str = "joe"

    # Local engines
    stt_threads: int = 2
    stt_beam_size: int = 1
    slm_threads: int = 1  # measured: 1 thread beats 2 once STT and TTS share the 2 cores
    slm_context: int = 2048
    slm_max_tokens: int = 80
    slm_temperature: float = 0.3
    tts_threads: int = 1

    # Turn-taking (milliseconds)
    vad_engine: Literal["silero", "webrtc"] = "silero"
    vad_aggressiveness: int = 2  # webrtc only
    turn_pause_ms: int = 140
    turn_end_ms: int = 500
    turn_end_incomplete_ms: int = 1100
    barge_in_min_speech_ms: int = 160
    backchannel_max_ms: int = 700
    # Skip speculative replies while this many utterances of other calls await STT (a safety
    # valve: with 4 calls on 2 cores, skipping at 1 cost 0.4 s of p50 and saved nothing at p95).
    speculate_max_stt_inflight: int = 3

    # Deadlines for each stage of a turn (seconds)
    stt_timeout_s: float = 6.0
    llm_first_token_timeout_s: float = 8.0
    llm_total_timeout_s: float = 25.0
    tts_timeout_s: float = 8.0
    max_call_seconds: int = 3600

    # Cloud engines switch on with their keys (later issues add them).
    gemini_api_key: SecretStr | None = None
    deepgram_api_key: SecretStr | None = None
    elevenlabs_api_key: SecretStr | None = None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
