"""Latency of the local engines on this machine; prints it and writes bench/results/engines.json.

Run: .venv/bin/python bench/engines.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.audio import resample_pcm16  # noqa: E402
from app.engines import build_slm  # noqa: E402
from app.llm.base import Message, collect_reply  # noqa: E402
from app.llm.llama_cpp_llm import LlamaCppLLM  # noqa: E402
from app.settings import get_settings  # noqa: E402
from app.speech.piper_tts import PiperTTS  # noqa: E402
from app.speech.whisper_stt import WhisperSTT  # noqa: E402
from app.telephony.audio import mulaw_to_pcm16, pcm16_to_mulaw  # noqa: E402

# Utterances whose Piper rendering lasts about 1 s, 2.5 s and 5 s.
UTTERANCES = {
    "1s": "Yes, please.",
    "2.5s": "Could you tell me what time you open tomorrow morning?",
    "5s": (
        "Hi, I would like to book a table for four people on Friday evening, "
        "around seven if you can."
    ),
}
TTS_TEXTS = {
    "short": "Sure, we open at nine.",
    "long": (
        "We are open from nine in the morning until six in the evening on weekdays, "
        "and on Saturdays we close a little earlier, at two in the afternoon."
    ),
}
# A realistic agent prompt (~200 tokens): the part the KV cache saves on later turns.
SYSTEM = (
    "You are Velox, the friendly phone assistant of Bella's Bakery, 12 Main Street. "
    "Answer in one or two short spoken sentences. No lists, no markdown. "
    "Facts: open Monday to Friday 7 am to 6 pm, Saturday 8 am to 2 pm, closed Sunday. "
    "We sell sourdough, baguettes, croissants, cinnamon rolls, cakes and coffee. "
    "Custom cakes need 48 hours notice and a 20 dollar deposit. "
    "Delivery within 5 miles costs 5 dollars, free above 40 dollars. "
    "Gluten-free bread is baked on Tuesdays and Fridays. "
    "Parking is behind the shop. The owner is Maria. "
    "If you do not know an answer, offer to take a message for Maria."
)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def bench_stt(stt: WhisperSTT, tts: PiperTTS, repeats: int) -> dict[str, Any]:
    await stt.prewarm()
    out: dict[str, Any] = {}
    for label, text in UTTERANCES.items():
        pcm = b"".join([c.pcm16 async for c in tts.stream(text)])
        phone = mulaw_to_pcm16(pcm16_to_mulaw(resample_pcm16(pcm, tts.sample_rate, 8000)))
        times = []
        heard = ""
        for _ in range(repeats):
            started = time.perf_counter()
            heard = (await stt.transcribe(phone, 8000)).text
            times.append(time.perf_counter() - started)
        out[label] = {
            "audio_s": round(len(phone) / 2 / 8000, 2),
            "latency_ms_median": _ms(statistics.median(times)),
            "latency_ms_min": _ms(min(times)),
            "text": heard,
        }
    return out


async def bench_tts(tts: PiperTTS, repeats: int) -> dict[str, Any]:
    await tts.prewarm()
    out: dict[str, Any] = {}
    for label, text in TTS_TEXTS.items():
        firsts, rtfs = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            first = None
            n_bytes = 0
            async for chunk in tts.stream(text):
                first = first if first is not None else time.perf_counter() - started
                n_bytes += len(chunk.pcm16)
            total = time.perf_counter() - started
            assert first is not None
            firsts.append(first)
            rtfs.append(total / (n_bytes / 2 / tts.sample_rate))
        out[label] = {
            "words": len(text.split()),
            "first_chunk_ms_median": _ms(statistics.median(firsts)),
            "real_time_factor_median": round(statistics.median(rtfs), 3),
        }
    return out


async def _turn(llm: LlamaCppLLM, messages: list[Message]) -> dict[str, Any]:
    reply = await collect_reply(llm, messages)
    text, usage, first, total = reply.text, reply.usage, reply.first_token_s, reply.total_s
    assert first is not None and usage is not None
    decode_s = total - first
    return {
        "ttft_ms": _ms(first),
        "total_ms": _ms(total),
        "prompt_tokens": usage.prompt_tokens,
        "cached_tokens": usage.cached_tokens,
        "completion_tokens": usage.completion_tokens,
        "tokens_per_s": round((usage.completion_tokens - 1) / decode_s, 1) if decode_s else None,
        "reply": text,
    }


async def bench_llm(llm: LlamaCppLLM) -> dict[str, Any]:
    await llm.prewarm("Warm-up.")  # loads weights into the page cache, not SYSTEM's prefix
    a1 = [Message("system", SYSTEM), Message("user", "Hi, are you open on Saturday?")]
    cold = await _turn(llm, a1)
    a2 = [*a1, Message("assistant", cold["reply"]), Message("user", "Do you deliver?")]
    warm = await _turn(llm, a2)
    # A second caller with another agent, then the first caller again: the first
    # conversation's state must come back from the RAM cache, not from the live context.
    other_system = SYSTEM.replace("Bella's Bakery", "Tony's Pizza").replace("Maria", "Tony")
    b1 = [Message("system", other_system), Message("user", "How late are you open today?")]
    other_cold = await _turn(llm, b1)
    a3 = [*a2, Message("assistant", warm["reply"]), Message("user", "Can I order a cake?")]
    interleaved = await _turn(llm, a3)
    b2 = [*b1, Message("assistant", other_cold["reply"]), Message("user", "Where do I park?")]
    other_warm = await _turn(llm, b2)
    return {
        "model": llm.model,
        "turn1_cold": cold,
        "turn2_warm": warm,
        "other_conversation_turn1_cold": other_cold,
        "turn3_after_other_conversation": interleaved,
        "other_conversation_turn2_after_interleave": other_warm,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    settings = get_settings()

    started = time.perf_counter()
    tts = PiperTTS(threads=settings.speech.tts_threads)
    tts_load = time.perf_counter() - started
    started = time.perf_counter()
    stt = WhisperSTT(threads=settings.speech.stt_threads, beam_size=settings.speech.stt_beam_size)
    stt_load = time.perf_counter() - started
    started = time.perf_counter()
    llm = build_slm(settings)
    assert isinstance(llm, LlamaCppLLM)
    llm_load = time.perf_counter() - started

    results = {
        "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine()},
        "load_ms": {"piper": _ms(tts_load), "whisper": _ms(stt_load), "llama_cpp": _ms(llm_load)},
        "stt": await bench_stt(stt, tts, args.repeats),
        "tts": await bench_tts(tts, args.repeats),
        "llm": await bench_llm(llm),
    }
    out = ROOT / "bench" / "results" / "engines.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    print(f"STT (whisper, {args.repeats} runs, median):")
    for label, r in results["stt"].items():
        print(f"  {label:>5} ({r['audio_s']} s audio): {r['latency_ms_median']} ms {r['text']!r}")
    print("TTS (piper):")
    for label, r in results["tts"].items():
        print(
            f"  {label:>5} ({r['words']} words): first chunk {r['first_chunk_ms_median']} ms, "
            f"RTF {r['real_time_factor_median']}"
        )
    print(f"LLM ({llm.name}):")
    for label, r in results["llm"].items():
        if isinstance(r, dict):
            print(
                f"  {label}: TTFT {r['ttft_ms']} ms, prompt {r['prompt_tokens']} "
                f"(cached {r['cached_tokens']}), {r['tokens_per_s']} tok/s  {r['reply']!r}"
            )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
