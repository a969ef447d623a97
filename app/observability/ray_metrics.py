"""velox_* metrics recorded through ray.serve.metrics and read back from every node.

Ray exports application metrics on each node's metrics port with a `ray_` prefix and its own
labels (worker id, session, …). `RayMetricFactory.exposition()` scrapes those ports, keeps the
velox_* series, removes the prefix and the per-process labels, and keeps `deployment` and
`replica`, so Prometheus sums across replicas as it would for any sharded service.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from app.observability.metrics import LATENCY_BUCKETS

logger = logging.getLogger(__name__)

_DROPPED_LABELS = frozenset(
    {"Component", "NodeAddress", "SessionName", "Version", "WorkerId", "JobId"}
)


@dataclass(frozen=True, slots=True)
class _Bound:
    metric: Any
    tags: dict[str, str]

    def inc(self, value: float = 1.0) -> None:
        self.metric.inc(value, tags=self.tags)

    def observe(self, value: float) -> None:
        self.metric.observe(value, tags=self.tags)


class _Family:
    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def labels(self, **tags: str) -> _Bound:
        return _Bound(self._metric, tags)

    def inc(self, value: float = 1.0) -> None:
        self._metric.inc(value)

    def observe(self, value: float) -> None:
        self._metric.observe(value)


class _Gauge:
    """Ray gauges only `set`; this replica's value is kept here so inc/dec work."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._value = 0.0
        metric.set(0.0)

    def inc(self, value: float = 1.0) -> None:
        self._value += value
        self._metric.set(self._value)

    def dec(self, value: float = 1.0) -> None:
        self.inc(-value)


class RayMetricFactory:
    """Series recorded with ray.serve.metrics (tagged with deployment and replica by Serve)."""

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> _Family:
        """A Ray counter exported as `velox_…_total`."""
        from ray.serve import metrics

        # Ray annotates tag_keys as Tuple[str] but means any number of keys.
        counter = metrics.Counter(f"{name}_total", description=doc, tag_keys=labels)  # type: ignore[arg-type]
        return _Family(counter)

    def gauge(self, name: str, doc: str) -> _Gauge:
        """A Ray gauge with inc/dec."""
        from ray.serve import metrics

        return _Gauge(metrics.Gauge(name, description=doc))

    def histogram(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> _Family:
        """A Ray histogram with voice-latency buckets."""
        from ray.serve import metrics

        return _Family(
            metrics.Histogram(
                name,
                description=doc,
                boundaries=list(LATENCY_BUCKETS),
                tag_keys=labels,  # type: ignore[arg-type]
            )
        )

    async def exposition(self) -> bytes:
        """The velox_* series of every alive node, relabelled for Prometheus."""
        import ray

        targets = [
            f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
            for node in ray.nodes()  # type: ignore[no-untyped-call]
            if node.get("Alive") and node.get("MetricsExportPort")
        ]
        async with httpx.AsyncClient(timeout=3.0) as client:
            pages = await asyncio.gather(
                *(client.get(url) for url in targets), return_exceptions=True
            )
        texts = [p.text for p in pages if isinstance(p, httpx.Response) and p.is_success]
        return relabel("\n".join(texts)).encode()


def relabel(text: str) -> str:
    """Keep the ray_velox_* series of a Ray metrics page, renamed velox_* with lean labels."""
    out: list[str] = []
    described: set[str] = set()
    for family in _families(text):
        if not family.name.startswith("ray_velox_"):
            continue
        # The parser names a counter as OpenMetrics does, without the "_total" of its samples.
        name = family.name.removeprefix("ray_") + ("_total" if family.type == "counter" else "")
        if name not in described:
            described.add(name)
            # A family the page did not describe reads back as "unknown" with no help.
            if family.documentation:
                out.append(f"# HELP {name} {_escape(family.documentation, quotes=False)}")
            if family.type != "unknown":
                out.append(f"# TYPE {name} {family.type}")
        out += [_sample_line(sample) for sample in family.samples]
    return "\n".join(out) + "\n"


def _families(text: str) -> Iterator[Metric]:
    """The page's metric families; a malformed line ends the page there, not the scrape."""
    try:
        yield from text_string_to_metric_families(text)
    except ValueError as exc:
        logger.warning("ray metrics page unreadable past a malformed line: %s", exc)


def _sample_line(sample: Sample) -> str:
    labels = ",".join(
        f'{key}="{_escape(value, quotes=True)}"'
        for key, value in sample.labels.items()
        if key not in _DROPPED_LABELS and not key.startswith("otel_")
    )
    name = sample.name.removeprefix("ray_")
    value = floatToGoString(sample.value)  # type: ignore[no-untyped-call]  # unannotated upstream
    return f"{name}{{{labels}}} {value}" if labels else f"{name} {value}"


def _escape(text: str, *, quotes: bool) -> str:
    """Undo the parser's unescaping: the exposition format escapes these in label values (and,
    but for the quote, in help text). Source: prometheus.io/docs/instrumenting/exposition_formats"""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quotes else text
