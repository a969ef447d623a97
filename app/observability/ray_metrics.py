"""velox_* metrics recorded through ray.serve.metrics and read back from every node.

Ray exports application metrics on each node's metrics port with a `ray_` prefix and its own
labels (worker id, session, …). `RayMetricFactory.exposition()` scrapes those ports, keeps the
velox_* series, removes the prefix and the per-process labels, and keeps `deployment` and
`replica`, so Prometheus sums across replicas as it would for any sharded service.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import httpx

from app.observability.metrics import LATENCY_BUCKETS

_DROPPED_LABELS = frozenset(
    {"Component", "NodeAddress", "SessionName", "Version", "WorkerId", "JobId"}
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_SAMPLE = re.compile(r"^ray_(velox_\w+)(?:\{(.*)\})?\s+(\S+)")


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
    """Keep the ray_velox_* lines of a Ray metrics page, renamed velox_* with lean labels."""
    out: list[str] = []
    described: set[tuple[str, str]] = set()
    for line in text.splitlines():
        if line.startswith(("# HELP ray_velox_", "# TYPE ray_velox_")):
            kind, name = line.split()[1], line.split()[2].removeprefix("ray_")
            if (kind, name) not in described:
                described.add((kind, name))
                out.append(line.replace(" ray_velox_", " velox_", 1))
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        kept = [
            f'{key}="{val}"'
            for key, val in _LABEL.findall(labels or "")
            if key not in _DROPPED_LABELS and not key.startswith("otel_")
        ]
        out.append(f"{name}{{{','.join(kept)}}} {value}" if kept else f"{name} {value}")
    return "\n".join(out) + "\n"
