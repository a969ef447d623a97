"""Every environment variable the product reads, in one settings object grouped by concern.

Each field keeps the env var of its own name, upper-cased (TWILIO_AUTH_TOKEN is
`settings.telephony.twilio_auth_token`), so grouping changed no deployment. The groups are plain
models; the environment and the .env file are read once, through a flat pydantic-settings model
made from the groups' own fields, so an env name can never drift from its field.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, create_model, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Server(BaseModel):
    """Where the web server listens and keeps its files."""

    velox_host: str = "127.0.0.1"
    velox_port: int = 8000
    velox_public_url: str | None = Field(
        default=None,
        description="Public base URL Twilio reaches (https://…); else taken from the request.",
    )
    velox_data_dir: Path = Path("var")
    # Without TWILIO_AUTH_TOKEN nobody can tell Twilio from an attacker: voice traffic is then
    # served only on a loopback server, unless this loudly named development flag says otherwise.
    velox_insecure_unsigned_voice: bool = False
    velox_trusted_proxies: str | None = Field(
        default=None,
        description="Comma-separated proxy addresses or CIDRs whose X-Forwarded-* are believed",
    )
    velox_operator_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for /metrics and /health details (else loopback clients only)",
    )
    velox_max_body_kb: int = 1024  # every route but the upload, which has max_upload_mb

    @property
    def on_loopback(self) -> bool:
        """The server listens on a loopback address only (a developer's machine)."""
        return is_loopback_host(self.velox_host)

    @property
    def trusted_proxies(self) -> list[str]:
        """VELOX_TRUSTED_PROXIES as a list of addresses or networks."""
        return _csv(self.velox_trusted_proxies)


class Database(BaseModel):
    """Postgres and Redis.

    No DATABASE_URL: an embedded Postgres under VELOX_DATA_DIR/postgres. No REDIS_URL: live-call
    state stays in this process (fine for one ingress replica).
    """

    database_url: str | None = None
    database_pool_size: int = 10
    redis_url: str | None = None


class Auth(BaseModel):
    """Sign-in: Clerk session JWTs (verified against the instance's JWKS) or org API keys."""

    clerk_secret_key: SecretStr | None = None
    clerk_api_url: str = "https://api.clerk.com"
    clerk_issuer: str | None = Field(
        default=None, description="Expected `iss`, e.g. https://<instance>.clerk.accounts.dev"
    )
    clerk_authorized_parties: str | None = Field(
        default=None, description="Comma-separated origins allowed in `azp`"
    )

    @property
    def clerk_parties(self) -> list[str] | None:
        """CLERK_AUTHORIZED_PARTIES as a list (None: any `azp` is accepted)."""
        if not self.clerk_authorized_parties:
            return None
        return [p.strip() for p in self.clerk_authorized_parties.split(",") if p.strip()]


class Telephony(BaseModel):
    """Twilio, and the agent that answers numbers nobody claimed."""

    twilio_auth_token: SecretStr | None = None
    twilio_account_sid: str | None = None
    twilio_api_url: str | None = Field(
        default=None, description="Another Twilio REST base URL (a proxy, or the tests' fake)"
    )
    transfer_number: str | None = Field(
        default=None, description="Where transfer_to_agent dials when the agent names no number"
    )
    max_call_seconds: int = 3600
    stream_token_ttl_s: int = 60  # the webhook's stream token is good for this long, once
    media_idle_timeout_s: float = 10.0  # a started stream sending no media this long is closed
    audio_burst_s: float = 2.0  # audio may run this far ahead of real time, then the stream ends
    velox_max_calls_per_org: int = 10  # an org's concurrent calls (organizations may lower it)
    # The demo organization answers numbers nobody claimed, so `make run` + `velox call` works
    # out of the box. None: on only for a loopback server without Clerk or Stripe.
    velox_demo_agent: bool | None = None
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


class Models(BaseModel):
    """The language models: the local SLM, and Gemini's tiers with GEMINI_API_KEY."""

    # A GGUF to serve instead of the shipped Qwen2.5-Coder-0.5B (a larger instruct model on a GPU,
    # say); it must carry its chat template, since tool calls are rendered through it.
    slm_model_path: Path | None = None
    slm_threads: int = 1  # measured: 1 thread beats 2 once STT and TTS share the 2 cores
    # Prompt evaluation, though, runs when the caller has stopped and STT is done: on 2 cores
    # a second thread doubles it (measured 120 -> 230 tokens/s on a 2 GHz EPYC).
    slm_batch_threads: int = 2
    slm_context: int = 2048
    slm_max_tokens: int = 80
    slm_temperature: float = 0.3
    # Every reply is sampled from this seed, so the same conversation gets the same reply
    # whatever else the replica served before it (speculative replies thrown away included):
    # evaluations, benchmarks and bug reports repeat.
    slm_seed: int = 0
    # vLLM only (serve_config.gpu.yaml). The turns one replica batches: the slm deployment's
    # max_ongoing_requests, which also bounds the CUDA graphs captured at start (up to twice it).
    slm_gpu_max_seqs: int = 64
    slm_gpu_memory_utilization: float = 0.3  # the GPU's share for weights and KV cache
    llm_first_token_timeout_s: float = 8.0
    llm_total_timeout_s: float = 25.0
    # A cloud tier that sends nothing for this long hands the turn to the next tier down.
    llm_tier_first_event_timeout_s: float = 3.0
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str | None = Field(
        default=None, description="Another Gemini API endpoint (a proxy, or the tests' fake)"
    )
    gemini_flash_model: str = "gemini-2.5-flash"
    gemini_pro_model: str = "gemini-2.5-pro"
    gemini_timeout_s: float = 10.0


class Speech(BaseModel):
    """Hearing and speaking: STT, TTS, voice activity and turn-taking."""

    stt_threads: int = 2
    stt_beam_size: int = 1
    stt_timeout_s: float = 6.0
    tts_threads: int = 1
    velox_voice: str = "joe"
    tts_timeout_s: float = 8.0
    # Turn-taking (milliseconds)
    vad_engine: Literal["silero", "webrtc"] = "silero"
    vad_aggressiveness: int = 2  # webrtc only
    turn_pause_ms: int = 140
    turn_end_ms: int = 500
    turn_end_incomplete_ms: int = 1100
    barge_in_min_speech_ms: int = 160
    backchannel_max_ms: int = 700
    max_utterance_s: float = 30.0  # a caller turn is ended here, however long they talk
    # Skip speculative replies while this many utterances of other calls await STT (a safety
    # valve: with 4 calls on 2 cores, skipping at 1 cost 0.4 s of p50 and saved nothing at p95).
    speculate_max_stt_inflight: int = 3
    # Read but not used yet: their engines come with the cloud speech issue.
    deepgram_api_key: SecretStr | None = None
    elevenlabs_api_key: SecretStr | None = None


class Knowledge(BaseModel):
    """Knowledge bases: uploads, chunking, embedding and the lookup a turn waits for."""

    max_upload_mb: int = 20
    rag_chunk_tokens: int = 200
    rag_chunk_overlap_tokens: int = 40
    embedder_threads: int = 1  # texts embedded at once, one core each
    rag_timeout_s: float = 1.0  # a turn waits this long for its passages, then answers without
    gemini_embedding_model: str = "gemini-embedding-001"
    gemini_embedding_dimension: int = 768
    # Per organization: what it may store.
    max_documents_per_org: int = 500
    max_storage_mb_per_org: int = 1024
    # Parsing runs in a worker process with these limits; office files are checked before they
    # are unpacked (zip bombs).
    parse_timeout_s: float = 120.0
    parse_memory_mb: int = 1024
    max_unpacked_mb: int = 200
    max_compression_ratio: int = 100
    max_archive_entries: int = 10_000


class Tools(BaseModel):
    """The business tools' backends. Each HTTP tool is offered to the model only when its URL is
    set (an agent's tool settings may override the URL); keys are sent as bearer tokens."""

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
    # The deployment-wide URLs and keys above serve the demo organization and these orgs only;
    # every other tenant brings its own.
    velox_tool_url_orgs: str | None = Field(
        default=None, description="Comma-separated org ids allowed the deployment's tool URLs"
    )
    tool_max_response_kb: int = 64
    # Development only: tenants' tool URLs may name loopback and private addresses (and use
    # http). Off, a tenant can never make the server fetch its own network.
    velox_allow_private_tool_urls: bool = False
    tool_timeout_s: float = 4.0
    tool_retries: int = 2  # extra attempts on connection errors, 429 and 5xx (safe calls only)
    holding_phrase_after_s: float = 1.2  # a slow tool or model: say a holding phrase after this
    still_working_after_s: float = 2.5  # ... and sorry for the wait this long after that

    @property
    def operator_url_orgs(self) -> list[str]:
        """VELOX_TOOL_URL_ORGS as a list."""
        return _csv(self.velox_tool_url_orgs)


class Limits(BaseModel):
    """Rate limits (the `limits` library's notation, e.g. "20/minute"), shared through Redis when
    REDIS_URL is set, and the playground's token budget."""

    rate_limit_auth_failures: str = "20/minute"  # per client address and per presented key
    rate_limit_webhooks: str = "300/minute"  # per client address
    rate_limit_stream_handshakes: str = "300/minute"  # per client address
    rate_limit_playground_turns: str = "30/minute"  # per API key or user
    playground_tokens_per_day: int = 200_000  # per org, only while Gemini is configured


class Billing(BaseModel):
    """Stripe, and what a call costs for its cost breakdown (USD; local engines cost compute
    only)."""

    stripe_secret_key: SecretStr | None = None
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

    def token_prices(self, tier: str) -> tuple[float, float]:
        """USD per 1,000 prompt and per 1,000 output tokens of `tier` (slm, flash or pro)."""
        prices = {
            "slm": (self.price_slm_input_per_1k_tokens, self.price_slm_output_per_1k_tokens),
            "flash": (self.price_flash_input_per_1k_tokens, self.price_flash_output_per_1k_tokens),
            "pro": (self.price_pro_input_per_1k_tokens, self.price_pro_output_per_1k_tokens),
        }
        return prices.get(tier, (0.0, 0.0))


GROUPS: dict[str, type[BaseModel]] = {
    "server": Server,
    "database": Database,
    "auth": Auth,
    "telephony": Telephony,
    "models": Models,
    "speech": Speech,
    "knowledge": Knowledge,
    "tools": Tools,
    "billing": Billing,
    "limits": Limits,
}


class _EnvironmentBase(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")


# Reads each field from the env var of its name (and .env): one flat model of every group's field.
_FIELDS: dict[str, Any] = {
    name: (info.annotation, info)
    for group in GROUPS.values()
    for name, info in group.model_fields.items()
}
_Environment: type[BaseSettings] = create_model(
    "_Environment", __base__=_EnvironmentBase, **_FIELDS
)


class Settings(BaseModel):
    """Velox configuration: `Settings()` reads the environment (and `.env`, or `_env_file=`).

    Flat keyword arguments override single fields by their env names' lower case, as before the
    grouping (`Settings(twilio_auth_token="…")`); groups may be passed whole as well.
    """

    server: Server = Field(default_factory=Server)
    database: Database = Field(default_factory=Database)
    auth: Auth = Field(default_factory=Auth)
    telephony: Telephony = Field(default_factory=Telephony)
    models: Models = Field(default_factory=Models)
    speech: Speech = Field(default_factory=Speech)
    knowledge: Knowledge = Field(default_factory=Knowledge)
    tools: Tools = Field(default_factory=Tools)
    billing: Billing = Field(default_factory=Billing)
    limits: Limits = Field(default_factory=Limits)

    @model_validator(mode="before")
    @classmethod
    def _read_environment(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        env_file = data.pop("_env_file", ".env")
        whole = {name: data.pop(name) for name in list(data) if name in GROUPS}
        flat = _Environment(_env_file=env_file, **data)
        read = {name: getattr(flat, name) for name in type(flat).model_fields}
        grouped: dict[str, Any] = {
            group: {name: read[name] for name in model.model_fields}
            for group, model in GROUPS.items()
        }
        return {**grouped, **whole}

    def replace(self, **values: Any) -> Settings:
        """A copy with single fields replaced, named as their env vars in lower case."""
        unknown = set(values) - set(_FIELDS)
        if unknown:
            raise ValueError(f"not settings: {', '.join(sorted(unknown))}")
        groups = {
            group: getattr(self, group).model_copy(
                update={k: v for k, v in values.items() if k in model.model_fields}
            )
            for group, model in GROUPS.items()
        }
        return self.model_copy(update=groups)

    @property
    def demo_agent_enabled(self) -> bool:
        """Whether unclaimed numbers reach the demo organization's agent."""
        if self.telephony.velox_demo_agent is not None:
            return self.telephony.velox_demo_agent
        return (
            self.server.on_loopback
            and self.auth.clerk_secret_key is None
            and self.billing.stripe_secret_key is None
        )


def is_loopback_host(host: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1; a name that must be resolved is not loopback."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def env_names() -> dict[str, str]:
    """Every setting's env var, with the group its field is in."""
    return {name.upper(): group for group, model in GROUPS.items() for name in model.model_fields}


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
