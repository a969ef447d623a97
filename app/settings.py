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

    # Data. No DATABASE_URL: an embedded Postgres under VELOX_DATA_DIR/postgres. No REDIS_URL:
    # live-call state stays in this process (fine for one ingress replica).
    database_url: str | None = None
    database_pool_size: int = 10
    redis_url: str | None = None
    # The demo organization answers numbers nobody claimed, so `make run` + `velox call` works
    # out of the box. None: on unless Clerk or Stripe is configured (a real deployment).
    velox_demo_agent: bool | None = None

    # Auth: Clerk session JWTs (verified against the instance's JWKS) or org API keys.
    clerk_secret_key: SecretStr | None = None
    clerk_api_url: str = "https://api.clerk.com"
    clerk_issuer: str | None = Field(
        default=None, description="Expected `iss`, e.g. https://<instance>.clerk.accounts.dev"
    )
    clerk_authorized_parties: str | None = Field(
        default=None, description="Comma-separated origins allowed in `azp`"
    )
    stripe_secret_key: SecretStr | None = None

    # Twilio
    twilio_auth_token: SecretStr | None = None
    twilio_account_sid: str | None = None
    twilio_api_url: str | None = Field(
        default=None, description="Another Twilio REST base URL (a proxy, or the tests' fake)"
    )
    transfer_number: str | None = Field(
        default=None, description="Where transfer_to_agent dials when the agent names no number"
    )

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

    # Knowledge base
    max_upload_mb: int = 20
    rag_chunk_tokens: int = 200
    rag_chunk_overlap_tokens: int = 40
    embedder_threads: int = 1  # texts embedded at once, one core each
    rag_timeout_s: float = 1.0  # a turn waits this long for its passages, then answers without

    # Local engines
    stt_threads: int = 2
    stt_beam_size: int = 1
    # A GGUF to serve instead of the shipped Qwen2.5-Coder-0.5B (a larger instruct model on a GPU,
    # say); it must carry its chat template, since tool calls are rendered through it.
    slm_model_path: Path | None = None
    slm_threads: int = 1  # measured: 1 thread beats 2 once STT and TTS share the 2 cores
    slm_context: int = 2048
    slm_max_tokens: int = 80
    slm_temperature: float = 0.3
    # vLLM only (serve_config.gpu.yaml). The turns one replica batches: the slm deployment's
    # max_ongoing_requests, which also bounds the CUDA graphs captured at start (up to twice it).
    slm_gpu_max_seqs: int = 64
    slm_gpu_memory_utilization: float = 0.3  # the GPU's share for weights and KV cache
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

    # What a call costs, for its cost breakdown (USD). Local engines cost compute only.
    price_telephony_per_min: float = 0.0085  # Twilio inbound, US local
    price_stt_per_min: float = 0.0
    price_tts_per_1k_chars: float = 0.0
    # Gemini bills prompt and output tokens apart (thinking counts as output). Defaults: 2.5
    # Flash and 2.5 Pro list prices for prompts under 200k tokens, from
    # ai.google.dev/gemini-api/docs/pricing; the local SLM costs compute only.
    price_slm_input_per_1k_tokens: float = 0.0
    price_slm_output_per_1k_tokens: float = 0.0
    price_flash_input_per_1k_tokens: float = 0.0003
    price_flash_output_per_1k_tokens: float = 0.0025
    price_pro_input_per_1k_tokens: float = 0.00125
    price_pro_output_per_1k_tokens: float = 0.01

    # Tools: each HTTP tool is offered to the model only when its URL is set (an agent's tool
    # settings may override the URL). Keys are sent as bearer tokens.
    order_api_url: str | None = None
    order_api_key: SecretStr | None = None
    inventory_api_url: str | None = None
    inventory_api_key: SecretStr | None = None
    calendar_api_url: str | None = None
    calendar_api_key: SecretStr | None = None
    crm_api_url: str | None = None
    crm_api_key: SecretStr | None = None
    handoff_api_url: str | None = None
    handoff_api_key: SecretStr | None = None
    tool_timeout_s: float = 4.0
    tool_retries: int = 2  # extra attempts on connection errors, 429 and 5xx (safe calls only)
    holding_phrase_after_s: float = 1.2  # a slow tool or model: say a holding phrase after this

    # Cloud engines switch on with their keys: Gemini now; Deepgram and ElevenLabs are read but
    # not used yet (their engines come with a later issue).
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str | None = Field(
        default=None, description="Another Gemini API endpoint (a proxy, or the tests' fake)"
    )
    gemini_embedding_model: str = "gemini-embedding-001"
    gemini_flash_model: str = "gemini-2.5-flash"
    gemini_pro_model: str = "gemini-2.5-pro"
    gemini_timeout_s: float = 10.0
    # A cloud tier that sends nothing for this long hands the turn to the next tier down.
    llm_tier_first_event_timeout_s: float = 3.0
    gemini_embedding_dimension: int = 768
    deepgram_api_key: SecretStr | None = None
    elevenlabs_api_key: SecretStr | None = None

    @property
    def demo_agent_enabled(self) -> bool:
        """Whether unclaimed numbers reach the demo organization's agent."""
        if self.velox_demo_agent is not None:
            return self.velox_demo_agent
        return self.clerk_secret_key is None and self.stripe_secret_key is None

    @property
    def clerk_parties(self) -> list[str] | None:
        """CLERK_AUTHORIZED_PARTIES as a list (None: any `azp` is accepted)."""
        if not self.clerk_authorized_parties:
            return None
        return [p.strip() for p in self.clerk_authorized_parties.split(",") if p.strip()]


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
