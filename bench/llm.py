"""The LLM tiers on this machine: time to first token and tokens/s per engine, tool calls under
the grammar, and which tier the router gives each labelled turn, with the cost that implies
against sending every turn to Gemini Flash. Prints it and writes bench/results/llm.json
(llm_vllm.json for vLLM).

Run: .venv/bin/python bench/llm.py [--repeats 3] [--slm vllm]

--slm vllm measures the SLM on vLLM (a GPU, `pip install .[gpu]`; tests/gpu/check.sh runs it).

The local SLM always runs. Gemini Flash and Pro run when GEMINI_API_KEY is set (the real API;
the tests' fake says nothing about latency). The tier shares use the routing policy plus the
SLM's own confidence check on each turn routed to it, as a call would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.conversation.routing import (  # noqa: E402
    DEFAULT_MIN_CONFIDENCE,
    TierPolicy,
    choose_tier,
    slm_tool_choice,
    slm_tools,
    turn_features,
)
from app.engines import SLMBackend, build_cloud_tiers, build_slm  # noqa: E402
from app.llm.base import (  # noqa: E402
    Confidence,
    LanguageModel,
    Message,
    TextDelta,
    Tier,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)
from app.settings import Settings, get_settings  # noqa: E402
from app.tools.knowledge_search import KnowledgeSearch  # noqa: E402
from app.tools.registry import TOOLS  # noqa: E402
from app.transcripts.costs import llm_cost  # noqa: E402
from tests.fixtures.turns import ROUTING_TURNS, TODAY, TOOL_REQUESTS  # noqa: E402

TIERS = list(Tier)
PROMPTS = [
    "Hi, are you open on Saturdays?",
    "Do you make birthday cakes, and how much notice do you need?",
    "Is there parking near the shop?",
]


@dataclass
class Sample:
    """One generation."""

    first_token_s: float | None
    total_s: float
    completion_tokens: int
    prompt_tokens: int
    cached_tokens: int
    confidence: float | None
    called: str | None
    cut_short: bool = False  # a tool call that ran out of tokens (the engine raises)


async def generate(
    llm: LanguageModel,
    messages: list[Message],
    tier: Tier,
    tools: list[ToolSpec] | None = None,
    tool_choice: ToolChoice = "auto",
) -> Sample:
    started = time.perf_counter()
    first: float | None = None
    usage: Usage | None = None
    confidence: float | None = None
    called: str | None = None
    cut_short = False
    try:
        async for event in llm.stream(messages, tools, tier, tool_choice):
            if isinstance(event, TextDelta | ToolCall) and first is None:
                first = time.perf_counter() - started
            if isinstance(event, ToolCall):
                called = event.name
            elif isinstance(event, Usage):
                usage = event
            elif isinstance(event, Confidence):
                confidence = event.score
    except ValueError:
        cut_short = True
    total = time.perf_counter() - started
    return Sample(
        first,
        total,
        usage.completion_tokens if usage else 0,
        usage.prompt_tokens if usage else 0,
        usage.cached_tokens if usage else 0,
        confidence,
        called,
        cut_short,
    )


def summary(samples: list[Sample]) -> dict[str, Any]:
    firsts = [s.first_token_s for s in samples if s.first_token_s is not None]
    rates = [
        (s.completion_tokens - 1) / (s.total_s - s.first_token_s)
        for s in samples
        if s.first_token_s is not None and s.completion_tokens > 1 and s.total_s > s.first_token_s
    ]
    return {
        "runs": len(samples),
        "ttft_p50_ms": round(statistics.median(firsts) * 1000, 1) if firsts else None,
        "ttft_max_ms": round(max(firsts) * 1000, 1) if firsts else None,
        "tokens_per_s": round(statistics.median(rates), 1) if rates else None,
        "prompt_tokens": round(statistics.fmean(s.prompt_tokens for s in samples)),
        "cached_tokens": round(statistics.fmean(s.cached_tokens for s in samples)),
    }


async def engine_latency(
    name: str, llm: LanguageModel, tier: Tier, system: str, repeats: int
) -> dict[str, Any]:
    """Plain replies (the first run of each prompt is cold; the rest reuse the prefix)."""
    samples = []
    for _ in range(repeats):
        for prompt in PROMPTS:
            samples.append(
                await generate(llm, [Message("system", system), Message("user", prompt)], tier)
            )
    result = summary(samples)
    print(
        f"{name:>14}: first token p50 {result['ttft_p50_ms']} ms (max {result['ttft_max_ms']}), "
        f"{result['tokens_per_s']} tok/s, prompt {result['prompt_tokens']} tokens "
        f"({result['cached_tokens']} cached)"
    )
    return result


async def slm_tool_calls(llm: LanguageModel, system: str) -> dict[str, Any]:
    """The labelled tool requests through the SLM as the engine offers them."""
    samples = []
    right = 0
    today = date.fromisoformat(TODAY)
    # The agent of the tests: every tool but the knowledge base (it has no documents).
    tools = [tool.spec() for tool in TOOLS if tool is not KnowledgeSearch]
    for request in TOOL_REQUESTS:
        history = [Message("user", b) for b in request.before]
        features = turn_features(history, request.said, today)
        offered = slm_tools(tools, features)
        choice = slm_tool_choice(offered)
        messages = [Message("system", system), *history, Message("user", request.said)]
        sample = await generate(llm, messages, Tier.SLM, offered or None, choice)
        samples.append(sample)
        right += sample.called == request.tool
    result = summary(samples)
    # A call arrives whole once its JSON is complete: its time is the whole generation.
    result.pop("tokens_per_s")
    result["ready_p50_ms"] = result.pop("ttft_p50_ms")
    result["ready_max_ms"] = result.pop("ttft_max_ms")
    result["right_tool"] = f"{right}/{len(TOOL_REQUESTS)}"
    result["cut_short"] = sum(s.cut_short for s in samples)
    print(
        f"{'slm tools':>14}: right tool {result['right_tool']} ({result['cut_short']} cut short); "
        f"call (or first words) ready "
        f"p50 {result['ready_p50_ms']} ms, max {result['ready_max_ms']} ms"
    )
    return result


async def tier_shares(llm: LanguageModel, system: str, settings: Settings) -> dict[str, Any]:
    """Which tier serves each labelled turn, and what that costs against all-Flash."""
    turns = [(t.said, t.before) for t in ROUTING_TURNS] + [
        (t.said, t.before) for t in TOOL_REQUESTS
    ]
    served: dict[str, int] = {tier.value: 0 for tier in Tier}
    routed_cost = flash_cost = capped_cost = 0.0
    escalated = 0
    for said, before in turns:
        history = [Message("user", b) for b in before]
        decision = choose_tier(turn_features(history, said), TierPolicy(), tools_offered=True)
        sample = await generate(
            llm, [Message("system", system), *history, Message("user", said)], Tier.SLM
        )
        tier = decision.tier
        if tier is Tier.SLM and (sample.confidence or 1.0) < DEFAULT_MIN_CONFIDENCE:
            tier, escalated = Tier.FLASH, escalated + 1
        served[tier.value] += 1
        spent = (sample.prompt_tokens, sample.completion_tokens)
        routed_cost += llm_cost(tier.value, *spent, settings)
        flash_cost += llm_cost(Tier.FLASH.value, *spent, settings)
        # An agent with max_tier=flash: Pro's turns go to Flash, the SLM keeps its own.
        capped_cost += llm_cost(min(tier, Tier.FLASH, key=TIERS.index).value, *spent, settings)
    shares = {tier: round(count / len(turns), 3) for tier, count in served.items()}
    saving = 1 - routed_cost / flash_cost if flash_cost else 0.0
    capped_saving = 1 - capped_cost / flash_cost if flash_cost else 0.0
    print(
        f"{'tier shares':>14}: {shares} of {len(turns)} turns ({escalated} SLM turns escalated "
        f"as unsure); cost {routed_cost * 1000:.3f} vs {flash_cost * 1000:.3f} USD per 1000 "
        f"such turns all on Flash ({saving:+.0%} saved); with max_tier=flash "
        f"{capped_cost * 1000:.3f} ({capped_saving:+.0%} saved)"
    )
    return {
        "turns": len(turns),
        "shares": shares,
        "escalated_as_unsure": escalated,
        "cost_usd_per_1000_turns": round(routed_cost * 1000, 4),
        "all_flash_cost_usd_per_1000_turns": round(flash_cost * 1000, 4),
        "saving_vs_all_flash": round(saving, 3),
        "max_tier_flash_cost_usd_per_1000_turns": round(capped_cost * 1000, 4),
        "max_tier_flash_saving_vs_all_flash": round(capped_saving, 3),
        "prices_per_1k_tokens": {
            f"{tier.value}_{kind}": price
            for tier in Tier
            for kind, price in zip(
                ("input", "output"), settings.billing.token_prices(tier.value), strict=True
            )
        },
    }


async def main(repeats: int, backend: SLMBackend) -> dict[str, Any]:
    settings = get_settings()
    system = f"{settings.telephony.velox_system_prompt}\n\nToday is {TODAY}."
    started = time.perf_counter()
    slm = build_slm(settings, backend)
    print(f"{'slm':>14}: {slm.name} ready in {time.perf_counter() - started:.1f} s")
    results: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "slm_engine": slm.name,
        "engines": {},
    }
    results["engines"]["slm"] = await engine_latency("slm", slm, Tier.SLM, system, repeats)
    for tier, engine in build_cloud_tiers(settings).items():
        results["engines"][tier.value] = await engine_latency(
            f"gemini {tier.value}", engine, tier, system, repeats
        )
    if settings.models.gemini_api_key is None:
        print("        gemini: GEMINI_API_KEY not set; Flash and Pro not measured")
    results["slm_tool_calls"] = await slm_tool_calls(slm, system)
    results["routing"] = await tier_shares(slm, system, settings)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slm", choices=["llama_cpp", "vllm"], default="llama_cpp")
    args = parser.parse_args()
    output = asyncio.run(main(args.repeats, args.slm))
    path = ROOT / "bench" / "results" / ("llm.json" if args.slm == "llama_cpp" else "llm_vllm.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(output, indent=2))
    print(f"wrote {path.relative_to(ROOT)}")
