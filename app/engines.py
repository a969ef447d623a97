"""Builds the engines the settings ask for; heavy model imports happen only here, on demand."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from app.llm.base import LanguageModel, Tier
from app.llm.router import RoutingLLM, TieredLLM
from app.rag.embedder import Embedder, MiniLMEmbedder
from app.settings import Settings
from app.speech.base import SpeechToText, TextToSpeech

logger = logging.getLogger(__name__)

SLMBackend = Literal["llama_cpp", "vllm"]


@dataclass(slots=True)
class Engines:
    """The three model roles a call uses."""

    stt: SpeechToText
    llm: LanguageModel | RoutingLLM  # a bare model gets a router around it (as_router)
    tts: TextToSpeech


def build_stt(settings: Settings) -> SpeechToText:
    """Local Whisper (tiny.en, int8)."""
    from app.speech.whisper_stt import WhisperSTT

    return WhisperSTT(threads=settings.speech.stt_threads, beam_size=settings.speech.stt_beam_size)


def build_slm(settings: Settings, backend: SLMBackend = "llama_cpp") -> LanguageModel:
    """The local small model: llama.cpp on CPU, or vLLM on a GPU."""
    from app.llm.model_files import slm_model_path

    model_path = slm_model_path(settings.models.slm_model_path, settings.server.velox_data_dir)
    if backend == "vllm":
        from app.llm.vllm_llm import VllmLLM

        return VllmLLM(
            model_path=model_path,
            max_tokens=settings.models.slm_max_tokens,
            temperature=settings.models.slm_temperature,
            seed=settings.models.slm_seed,
            max_num_seqs=settings.models.slm_gpu_max_seqs,
            gpu_memory_utilization=settings.models.slm_gpu_memory_utilization,
        )
    from app.llm.llama_cpp_llm import LlamaCppLLM

    return LlamaCppLLM(
        model_path=model_path,
        threads=settings.models.slm_threads,
        batch_threads=settings.models.slm_batch_threads,
        context=settings.models.slm_context,
        max_tokens=settings.models.slm_max_tokens,
        temperature=settings.models.slm_temperature,
        seed=settings.models.slm_seed,
    )


def build_cloud_tiers(settings: Settings) -> dict[Tier, LanguageModel]:
    """Gemini Flash and Pro with GEMINI_API_KEY; nothing without (every tier is then local)."""
    if settings.models.gemini_api_key is None:
        return {}
    from app.llm.gemini_llm import GeminiLLM

    gemini = GeminiLLM(
        api_key=settings.models.gemini_api_key.get_secret_value(),
        base_url=settings.models.gemini_base_url,
        flash_model=settings.models.gemini_flash_model,
        pro_model=settings.models.gemini_pro_model,
        timeout_s=settings.models.gemini_timeout_s,
    )
    return {Tier.FLASH: gemini, Tier.PRO: gemini}


def build_router(settings: Settings, slm: LanguageModel) -> TieredLLM:
    """The LLM router around `slm`, with the cloud tiers the settings allow."""
    return TieredLLM(
        slm=slm,
        tiers=build_cloud_tiers(settings),
        first_event_timeout_s=settings.models.llm_tier_first_event_timeout_s,
    )


def build_tts(settings: Settings) -> TextToSpeech:
    """Local Piper voice."""
    from app.speech.piper_tts import PiperTTS

    return PiperTTS(threads=settings.speech.tts_threads)


def build_embedder(settings: Settings) -> Embedder:
    """Gemini embeddings with GEMINI_API_KEY, else all-MiniLM-L6-v2 on this machine."""
    if settings.models.gemini_api_key is not None:
        from app.rag.gemini_embedder import GeminiEmbedder

        return GeminiEmbedder(
            settings.models.gemini_api_key.get_secret_value(),
            model=settings.knowledge.gemini_embedding_model,
            dimension=settings.knowledge.gemini_embedding_dimension,
            base_url=settings.models.gemini_base_url,
        )
    return MiniLMEmbedder(
        threads=settings.knowledge.embedder_threads,
        models_dir=settings.server.velox_data_dir / "models",
    )


async def prewarm_engines(engines: Engines, system_prompt: str | None = None) -> None:
    """Load every model before the first call, so no caller pays for it."""
    await engines.stt.prewarm()
    await engines.tts.prewarm()
    await engines.llm.prewarm(system_prompt)


async def close_engines(engines: Engines) -> None:
    """Release every engine's threads, connections and models."""
    await engines.llm.aclose()
    await engines.tts.aclose()
    await engines.stt.aclose()


def build_local_engines(settings: Settings) -> Engines:
    """All three roles in this process (tests and `velox dev`)."""
    return Engines(
        stt=build_stt(settings),
        llm=build_router(settings, build_slm(settings)),
        tts=build_tts(settings),
    )
