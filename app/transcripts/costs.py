"""What a conversation cost, by part: telephony minutes, STT, LLM per tier, TTS (USD, from
settings)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.settings import Settings

# Tokens by tier: {"flash": {"prompt": 812, "completion": 41}, ...}
TierTokens = dict[str, dict[str, int]]


def add_tokens(totals: TierTokens, more: TierTokens) -> TierTokens:
    """`totals` plus `more`, tier by tier (in place, and returned)."""
    for tier, counts in more.items():
        into = totals.setdefault(tier, {"prompt": 0, "completion": 0})
        for kind in ("prompt", "completion"):
            into[kind] = into.get(kind, 0) + int(counts.get(kind, 0))
    return totals


def llm_cost(tier: str, prompt: int, completion: int, settings: Settings) -> float:
    """USD for one tier's tokens at the configured prices."""
    price_in, price_out = settings.billing.token_prices(tier)
    return float(prompt / 1000 * price_in + completion / 1000 * price_out)


@dataclass(slots=True)
class CallUsage:
    """What a call consumed, summed over its turns."""

    stt_seconds: float = 0.0
    tts_chars: int = 0
    llm_tokens: TierTokens = field(default_factory=dict)

    @classmethod
    def from_cost(cls, cost: Mapping[str, Any]) -> CallUsage:
        """The usage a stored `cost` breakdown was priced from (empty for `{}`)."""
        tokens = cost.get("llm_tokens") or {}
        return cls(
            stt_seconds=float(cost.get("stt_seconds") or 0.0),
            tts_chars=int(cost.get("tts_chars") or 0),
            llm_tokens={tier: dict(counts) for tier, counts in tokens.items()},
        )

    def add(
        self, *, stt_seconds: float = 0.0, tts_chars: int = 0, llm_tokens: TierTokens | None = None
    ) -> CallUsage:
        """This usage plus one turn's (in place, and returned)."""
        self.stt_seconds += stt_seconds
        self.tts_chars += tts_chars
        add_tokens(self.llm_tokens, llm_tokens or {})
        return self


def cost_breakdown(usage: CallUsage, duration_s: float, settings: Settings) -> dict[str, object]:
    """The conversation's `cost` column: each part and the total, rounded to 1/10,000 of a cent.

    Telephony bills per started minute, as Twilio does.
    """
    minutes = -(-duration_s // 60) if duration_s > 0 else 0
    llm = {
        tier: llm_cost(tier, counts.get("prompt", 0), counts.get("completion", 0), settings)
        for tier, counts in usage.llm_tokens.items()
    }
    parts = {
        "telephony": minutes * settings.billing.price_telephony_per_min,
        "stt": usage.stt_seconds / 60 * settings.billing.price_stt_per_min,
        "tts": usage.tts_chars / 1000 * settings.billing.price_tts_per_1k_chars,
    }
    total = sum(parts.values()) + sum(llm.values())
    return {
        **{k: round(v, 6) for k, v in parts.items()},
        "llm": {k: round(v, 6) for k, v in llm.items()},
        "total": round(total, 6),
        "currency": "USD",
        "billed_minutes": int(minutes),
        "llm_tokens": {tier: dict(counts) for tier, counts in usage.llm_tokens.items()},
        "tts_chars": usage.tts_chars,
        "stt_seconds": round(usage.stt_seconds, 2),
    }
