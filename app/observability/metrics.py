"""The velox_* Prometheus series, in one place, with one attribute per thing worth counting.

In one process (tests, `velox dev`) the series live in a prometheus_client registry. Under Ray
Serve each replica records through `ray.serve.metrics`, which Ray collects on every node's
metrics port; `exposition()` then gathers the velox_* series of the whole cluster, so
GET /metrics on the public port shows every replica's calls, not only its own.
"""

from __future__ import annotations

from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Voice latency lives between 50 ms and a few seconds; the default buckets are too coarse there.
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)


class MetricFactory(Protocol):
    """Makes counters, gauges and histograms with prometheus_client's calling conventions."""

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        """A counter; `name` without the `_total` suffix."""
        ...

    def gauge(self, name: str, doc: str) -> Any:
        """A gauge with inc() and dec()."""
        ...

    def histogram(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        """A latency histogram in seconds."""
        ...

    async def exposition(self) -> bytes:
        """Prometheus text of every velox_* series this backend can see."""
        ...


class PrometheusFactory:
    """Series in a prometheus_client registry of this process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        """A prometheus_client Counter (exposed as `<name>_total`)."""
        return Counter(name, doc, labels, registry=self.registry)

    def gauge(self, name: str, doc: str) -> Gauge:
        """A prometheus_client Gauge."""
        return Gauge(name, doc, registry=self.registry)

    def histogram(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
        """A prometheus_client Histogram with voice-latency buckets."""
        return Histogram(name, doc, labels, buckets=LATENCY_BUCKETS, registry=self.registry)

    async def exposition(self) -> bytes:
        """This registry in Prometheus text format."""
        return generate_latest(self.registry)


class Metrics:
    """The call path's metrics, whatever backend records them."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, factory: MetricFactory | None = None) -> None:
        f = self.factory = factory or PrometheusFactory()
        self.calls_total = f.counter("velox_calls", "Calls by final status.", ("status",))
        self.active_calls = f.gauge("velox_active_calls", "Calls in progress.")
        self.streams_refused_total = f.counter(
            "velox_streams_refused",
            "Media streams closed before their call ran (no or bad token, duplicate, at cap).",
            ("reason",),
        )
        self.calls_refused_total = f.counter(
            "velox_calls_refused",
            "Incoming calls turned away at the webhook (busy, voice not served).",
            ("reason",),
        )
        self.llm_latency = f.histogram(
            "velox_llm_latency_seconds", "LLM time to first token.", ("model",)
        )
        self.tts_latency = f.histogram(
            "velox_tts_latency_seconds", "TTS time to first audio.", ("provider",)
        )
        self.stt_latency = f.histogram(
            "velox_stt_latency_seconds", "STT time for one utterance.", ("provider",)
        )
        self.e2e_latency = f.histogram(
            "velox_e2e_latency_seconds",
            "Voice to voice: end of the caller's speech to the first reply audio sent.",
        )
        self.turn_end_delay = f.histogram(
            "velox_turn_end_delay_seconds",
            "End of the caller's speech to the moment the turn was judged finished.",
        )
        self.barge_in_latency = f.histogram(
            "velox_barge_in_latency_seconds",
            "First voiced caller frame to the clear sent to Twilio.",
        )
        self.llm_tier_total = f.counter("velox_llm_tier_turns", "Turns per LLM tier.", ("tier",))
        self.turns_total = f.counter("velox_turns", "Agent turns by outcome.", ("outcome",))
        self.tool_calls_total = f.counter(
            "velox_tool_calls", "Tool calls by tool and success.", ("tool", "ok")
        )

    async def exposition(self) -> bytes:
        """Prometheus text exposition of every velox_* series."""
        return await self.factory.exposition()
