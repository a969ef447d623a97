"""What a call cost, by part: telephony minutes, STT, LLM per tier, TTS (USD, from settings)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.settings import Settings


@dataclass(slots=True)
class CallUsage:
    """What a call consumed, summed over its turns."""

    stt_seconds: float = 0.0
    tts_chars: int = 0
    llm_tokens: dict[str, int] = field(default_factory=dict)  # by tier


def cost_breakdown(usage: CallUsage, duration_s: float, settings: Settings) -> dict[str, object]:
    """The conversation's `cost` column: each part and the total, rounded to 1/10,000 of a cent.

    Telephony bills per started minute, as Twilio does.
    """
    per_1k = {
        "slm": settings.price_slm_per_1k_tokens,
        "flash": settings.price_flash_per_1k_tokens,
        "pro": settings.price_pro_per_1k_tokens,
    }
    minutes = -(-duration_s // 60) if duration_s > 0 else 0
    llm = {tier: tokens / 1000 * per_1k.get(tier, 0.0) for tier, tokens in usage.llm_tokens.items()}
    parts = {
        "telephony": minutes * settings.price_telephony_per_min,
        "stt": usage.stt_seconds / 60 * settings.price_stt_per_min,
        "tts": usage.tts_chars / 1000 * settings.price_tts_per_1k_chars,
    }
    total = sum(parts.values()) + sum(llm.values())
    return {
        **{k: round(v, 6) for k, v in parts.items()},
        "llm": {k: round(v, 6) for k, v in llm.items()},
        "total": round(total, 6),
        "currency": "USD",
        "billed_minutes": int(minutes),
        "llm_tokens": dict(usage.llm_tokens),
        "tts_chars": usage.tts_chars,
        "stt_seconds": round(usage.stt_seconds, 2),
    }
