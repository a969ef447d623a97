"""The velox_* Prometheus series, in one place, with one method per thing worth counting."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Voice latency lives between 50 ms and a few seconds; the default buckets are too coarse there.
_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


class Metrics:
    """Process-local Prometheus metrics of the call path."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.calls_total = Counter("velox_calls", "Calls by final status.", ["status"], registry=r)
        self.active_calls = Gauge("velox_active_calls", "Calls in progress.", registry=r)
        self.llm_latency = Histogram(
            "velox_llm_latency_seconds",
            "LLM time to first token.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tts_latency = Histogram(
            "velox_tts_latency_seconds",
            "TTS time to first audio.",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stt_latency = Histogram(
            "velox_stt_latency_seconds",
            "STT time for one utterance.",
            ["provider"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e_latency = Histogram(
            "velox_e2e_latency_seconds",
            "Voice to voice: end of the caller's speech to the first reply audio sent.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.turn_end_delay = Histogram(
            "velox_turn_end_delay_seconds",
            "End of the caller's speech to the moment the turn was judged finished.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.barge_in_latency = Histogram(
            "velox_barge_in_latency_seconds",
            "First voiced caller frame to the clear sent to Twilio.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_tier_total = Counter(
            "velox_llm_tier_turns", "Turns answered per LLM tier.", ["tier"], registry=r
        )
        self.turns_total = Counter(
            "velox_turns", "Agent turns by outcome.", ["outcome"], registry=r
        )

    def render(self) -> bytes:
        """Prometheus text exposition of every series."""
        return generate_latest(self.registry)
