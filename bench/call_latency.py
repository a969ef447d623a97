"""Voice-to-voice latency of whole simulated phone calls; prints p50/p95 and writes JSON.

Each call is placed exactly as Twilio would (signed webhook, real-time Media Streams, marks
echoed by a simulated phone). The clock of a turn starts at the last audible frame of the
caller's speech and stops at the first audible frame of the generated answer — there are no
canned filler phrases to stop it early. The per-stage breakdown comes from the server's own
turn records. Barge-in latency is measured from the first frame of the caller's interruption
to the `clear` that stops the agent.

Run: .venv/bin/python bench/call_latency.py [--calls 5] [--concurrency 4] [--url URL]
Without --url it starts graph:app on a local Ray cluster (as `make run` does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.settings import get_settings  # noqa: E402
from harness.simulator.caller import CallerTurn, CallResult, place_call  # noqa: E402
from harness.simulator.script import speak_lines  # noqa: E402

QUESTIONS = [
    "Hi, what time do you open on Saturday?",
    "Where can I park my car?",
    "Can I order a birthday cake for Friday?",
    "What is your address?",
    "Do you bake croissants?",
    "Thanks a lot, goodbye.",
]
BARGE_IN_LINE = "Where can I park?"


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary(values: list[float]) -> dict[str, Any]:
    """n, p50, p95, mean, max in seconds."""
    return {
        "n": len(values),
        "p50": _r(percentile(values, 50)),
        "p95": _r(percentile(values, 95)),
        "mean": _r(statistics.fmean(values)) if values else None,
        "max": _r(max(values)) if values else None,
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def server_stages(call_sids: list[str]) -> dict[str, list[float]]:
    """Per-stage timings the server recorded for these calls' answered turns (the agent's
    messages in Postgres, as the dashboard shows them)."""
    from sqlalchemy import select

    from app.db.database import Database
    from app.db.models import Conversation, Message
    from app.db.setup import database_url

    db = Database(database_url(get_settings()), pool_size=1)
    try:
        async with db.system() as session:
            rows = await session.scalars(
                select(Message.latency)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .where(Conversation.call_sid.in_(call_sids), Message.role == "agent")
            )
            timings = list(rows)
    finally:
        await db.close()
    stages: dict[str, list[float]] = {}
    for latency in timings:
        if "stt_s" not in latency:
            continue  # the greeting, or an apology: no caller turn behind it
        for stage, value in latency.items():
            stages.setdefault(stage, []).append(value)
    return stages


async def one_call(
    url: str, audios: list[bytes], token: str | None, delay_s: float = 0.0, rotate: int = 0
) -> CallResult:
    await asyncio.sleep(delay_s)
    turns = [CallerTurn(audio_pcm16_8k=a, text=q) for a, q in zip(audios, QUESTIONS, strict=False)]
    turns = turns[rotate:] + turns[:rotate]  # calls ask in different orders, so they drift apart
    return await place_call(url, turns, auth_token=token, timeout_s=30)


async def barge_in_call(url: str, audio: bytes, token: str | None) -> CallResult:
    turn = CallerTurn(audio_pcm16_8k=audio, text=BARGE_IN_LINE, barge_in_after_s=1.0)
    return await place_call(url, [turn], auth_token=token, timeout_s=30)


async def run(
    url: str,
    calls: int,
    concurrency: int,
    turns: int,
    token: str | None,
    rounds: int,
    stagger_s: float,
) -> dict[str, Any]:
    from app.speech.piper_tts import PiperTTS

    tts = PiperTTS()
    audios = await speak_lines(tts, QUESTIONS[:turns])
    (barge_audio,) = await speak_lines(tts, [BARGE_IN_LINE])
    del tts

    await one_call(url, audios[:1], token)  # warm-up: caches, first-call paths

    results: dict[str, Any] = {}
    sequential: list[CallResult] = []
    for _ in range(calls):
        sequential.append(await one_call(url, audios, token))
    barge = [await barge_in_call(url, barge_audio, token) for _ in range(max(1, calls // 2))]
    concurrent: list[CallResult] = []
    rng = random.Random(20261125)
    for _ in range(rounds):
        # Real calls overlap but do not dial in lockstep: each starts at a random moment in the
        # first `stagger_s` seconds (seeded) and asks its questions in its own order. With
        # --stagger 0 every caller speaks in the same 20 ms: the worst-case burst.
        starts = [rng.uniform(0, stagger_s) for _ in range(concurrency)]
        concurrent += await asyncio.gather(
            *(one_call(url, audios, token, starts[i], i % len(audios)) for i in range(concurrency))
        )

    for name, group in (("sequential", sequential), (f"concurrent_{concurrency}", concurrent)):
        if not group:
            continue
        v2v = [t.voice_to_voice_s for c in group for t in c.turns if t.voice_to_voice_s]
        missing = sum(1 for c in group for t in c.turns if not t.voice_to_voice_s)
        greeting = [c.greeting_latency_s for c in group if c.greeting_latency_s is not None]
        stages = await server_stages([c.call_sid for c in group])
        results[name] = {
            "calls": len(group),
            "voice_to_voice_s": summary(v2v),
            "turns_without_reply": missing,
            "greeting_latency_s": summary(greeting),
            "server_stages_s": {stage: summary(values) for stage, values in stages.items()},
            "violations": sum(len(c.violations) for c in group),
        }
    stops = [t.barge_in_stop_s for c in barge for t in c.turns if t.barge_in_stop_s is not None]
    results["barge_in_stop_s"] = summary(stops)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an already running Velox server")
    parser.add_argument("--calls", type=int, default=5, help="sequential calls")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of concurrent calls")
    parser.add_argument(
        "--stagger", type=float, default=4.0, help="concurrent calls start within this many s"
    )
    parser.add_argument("--turns", type=int, default=4, help="caller turns per call")
    parser.add_argument("--serve-config", type=Path, help="a variant of serve_config.yaml")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/call_latency.json")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = get_settings()
    token = (
        settings.telephony.twilio_auth_token.get_secret_value()
        if settings.telephony.twilio_auth_token
        else None
    )
    url = args.url
    if url is None:
        import launch

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        url = launch.run_local(port=port, config=args.serve_config)
    try:
        results = asyncio.run(
            run(url, args.calls, args.concurrency, args.turns, token, args.rounds, args.stagger)
        )
    finally:
        if args.url is None:
            launch.stop_local()

    report = {
        "benchmark": "call_latency",
        "server": args.url or "graph:app on local Ray Serve",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "targets": {"sequential_p50_s": 1.0, "sequential_p95_s": 1.5, "concurrent_4_p95_s": 2.0},
        "concurrent_stagger_s": args.stagger,
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))

    for name in ("sequential", f"concurrent_{args.concurrency}"):
        if name not in report:
            continue
        block = report[name]
        v = block["voice_to_voice_s"]
        print(
            f"{name:>14}: voice-to-voice p50 {v['p50']} s  p95 {v['p95']} s  "
            f"(n={v['n']}, no reply: {block['turns_without_reply']}); "
            f"greeting p50 {block['greeting_latency_s']['p50']} s"
        )
        for stage, s in block["server_stages_s"].items():
            print(f"{'':>16}{stage:<18} p50 {s['p50']} s  p95 {s['p95']} s")
    b = report["barge_in_stop_s"]
    print(f"{'barge-in stop':>14}: p50 {b['p50']} s  p95 {b['p95']} s  (n={b['n']})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
