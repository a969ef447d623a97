"""What one more Ray hop per token costs a streamed reply: the ingress reading a model's stream
directly, against reading it through a relay deployment in between (the shape the llm_router
deployment gave every turn before it was folded into the ingress).

Both paths stream the same events from the same deployment; the relay does nothing but re-yield
them, so the difference is the hop alone: first-event latency, and the time of the whole stream.
The measuring side is a deployment too, as the ingress is. Prints the numbers and writes
bench/results/router_hop.json.

Run: .venv/bin/python bench/router_hop.py [--tokens 60] [--rounds 40] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.llm.base import TextDelta  # noqa: E402


@serve.deployment(name="tokens", ray_actor_options={"num_cpus": 0.1})
class Tokens:
    """Streams `n` text events at a model's pace (`gap_s` apart), as the SLM deployment does."""

    async def stream(self, n: int, gap_s: float) -> AsyncIterator[TextDelta]:
        for i in range(n):
            yield TextDelta(f" word{i}")
            if gap_s:
                await asyncio.sleep(gap_s)


@serve.deployment(name="relay", ray_actor_options={"num_cpus": 0.1})
class Relay:
    """Re-yields the model's stream: one more hop, no work."""

    def __init__(self, tokens: DeploymentHandle) -> None:
        self._tokens = tokens.options(stream=True)

    async def stream(self, n: int, gap_s: float) -> AsyncIterator[TextDelta]:
        async for event in self._tokens.stream.remote(n, gap_s):
            yield event


@serve.deployment(name="caller", ray_actor_options={"num_cpus": 0.1})
class Caller:
    """Reads streams as the ingress does and times them."""

    def __init__(self, tokens: DeploymentHandle, relay: DeploymentHandle) -> None:
        self._paths = {
            "direct": tokens.options(stream=True),
            "relayed": relay.options(stream=True),
        }

    async def measure(
        self, path: str, n: int, gap_s: float, rounds: int, concurrency: int
    ) -> dict[str, list[float]]:
        handle = self._paths[path]
        first: list[float] = []
        total: list[float] = []

        async def one() -> None:
            started = time.perf_counter()
            got_first = False
            async for _ in handle.stream.remote(n, gap_s):
                if not got_first:
                    first.append(time.perf_counter() - started)
                    got_first = True
            total.append(time.perf_counter() - started)

        for _ in range(rounds):
            await asyncio.gather(*(one() for _ in range(concurrency)))
        return {"first_s": first, "total_s": total}


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=60, help="events per stream (a reply)")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="model time between events")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4, help="streams at once (calls)")
    args = parser.parse_args()

    import ray

    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    try:
        tokens = Tokens.bind()
        caller = serve.run(Caller.bind(tokens, Relay.bind(tokens)), name="hop", route_prefix=None)
        results: dict[str, Any] = {}
        for path in ("direct", "relayed"):  # warm both paths before measuring either
            caller.measure.remote(path, args.tokens, 0.0, 3, 1).result()
        for path in ("direct", "relayed"):
            raw = caller.measure.remote(
                path, args.tokens, args.gap_ms / 1000, args.rounds, args.concurrency
            ).result()
            results[path] = {
                "first_event": _summary(raw["first_s"]),
                "whole_stream": _summary(raw["total_s"]),
            }
    finally:
        serve.shutdown()
        ray.shutdown()

    direct, relayed = results["direct"], results["relayed"]
    extra_first = relayed["first_event"]["p50_ms"] - direct["first_event"]["p50_ms"]
    extra_stream = relayed["whole_stream"]["p50_ms"] - direct["whole_stream"]["p50_ms"]
    report = {
        "tokens": args.tokens,
        "gap_ms": args.gap_ms,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
        "machine": platform.machine(),
        "cpus": 2,
        **results,
        "relay_adds_first_event_p50_ms": round(extra_first, 2),
        "relay_adds_per_event_ms": round(extra_stream / args.tokens, 3),
    }
    print(
        f"{args.tokens} events a stream, {args.concurrency} streams at once, "
        f"{args.rounds} rounds"
    )
    for path in ("direct", "relayed"):
        f, w = results[path]["first_event"], results[path]["whole_stream"]
        print(
            f"  {path:8s} first event p50 {f['p50_ms']:7.2f} ms  p95 {f['p95_ms']:7.2f} ms   "
            f"whole stream p50 {w['p50_ms']:8.2f} ms  p95 {w['p95_ms']:8.2f} ms"
        )
    print(
        f"  the relay adds {extra_first:.2f} ms to the first event and "
        f"{report['relay_adds_per_event_ms']:.3f} ms per event"
    )
    out = ROOT / "bench" / "results" / "router_hop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
