"""bench/call_latency.py's answer latency: a holding phrase is not the answer, an apology is none.

The benchmark learns where a reply's first sentence ends from the marks the server sends (one
after every 10th frame and one after each sentence) and what the sentence was from the server's
saved turn record; here both come from a scripted arrival log.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from app.calls.responder import APOLOGY
from app.conversation.engine import MODEL_HOLDING_PHRASE
from harness.simulator.caller import CallResult, TurnResult

LOUD = b"\x00" * 160  # mu-law 0x00: full scale
SPEECH_END = 104.0


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench/call_latency.py"
    spec = importlib.util.spec_from_file_location("call_latency", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def arrivals(turn: int, frames: int, at: float, sent_before: int = 0):  # type: ignore[no-untyped-def]
    """`frames` frames of a server turn arriving in a burst at `at`, with the server's marks."""
    media, marks = [], []
    for i in range(frames):
        t = at + i * 0.0005
        media.append((t, LOUD))
        count = sent_before + i + 1
        if count % 10 == 0 or i == frames - 1:
            marks.append((t + 0.0001, f"{turn}:0:{count}"))
    return media, marks


def measure(bench: ModuleType, filler_frames: int, answer_at: float, said: str):  # type: ignore[no-untyped-def]
    call = bench.BenchCall("http://127.0.0.1:1", [], hold_patience_s=5)
    greeting = arrivals(0, 37, 100.1)
    first = arrivals(1, filler_frames, 105.0)
    answer = arrivals(1, 45, answer_at, sent_before=filler_frames)
    call._media_log = greeting[0] + first[0] + answer[0]
    call.marks = greeting[1] + first[1] + answer[1]
    result = CallResult(call_sid="CA1", account_sid="AC1", opened_at=100.0)
    result.turns = [
        TurnResult(index=0, text="q", started_at=102.0, speech_end_at=SPEECH_END),
    ]
    result.turns[0].voice_to_voice_s = 105.0 - SPEECH_END
    plan = bench.CallPlan("demo", "piper-joe", "+15550100", ["q"], [b""], "sequential")
    messages = [
        bench.AgentMessage(0.0, 3.0, "Hello.", {}),
        bench.AgentMessage(3.9, 9.0, said, {"stt_s": 0.2}),
    ]
    (stat,) = bench.analyse(bench.PlacedCall(plan, call, result), messages)
    return stat


@pytest.mark.parametrize("filler_frames", [63, 60])  # 60: its end mark is also a 10-frame mark
def test_the_answer_starts_after_the_holding_phrase(bench, filler_frames):
    stat = measure(bench, filler_frames, 107.0, f"{MODEL_HOLDING_PHRASE} We open at 7.")
    assert stat.first_audio_s == pytest.approx(1.0)
    assert stat.opened_with == MODEL_HOLDING_PHRASE
    assert stat.answer_arrived_s == pytest.approx(3.0, abs=0.01)
    assert stat.answer_s == pytest.approx(3.0, abs=0.01)


def test_an_answer_that_arrives_during_the_holding_phrase_is_heard_after_it(bench):
    stat = measure(bench, 63, 105.5, f"{MODEL_HOLDING_PHRASE} We open at 7.")
    assert stat.answer_arrived_s == pytest.approx(1.5, abs=0.01)
    assert stat.answer_s == pytest.approx(1.0 + 63 * 0.02, abs=0.01)


def test_a_reply_without_a_holding_phrase_is_the_answer(bench):
    stat = measure(bench, 63, 107.0, "We open at 7. And close at 6.")
    assert stat.opened_with is None and stat.answer_s == pytest.approx(1.0, abs=0.01)


def test_an_apology_is_no_answer(bench):
    stat = measure(bench, 63, 107.0, APOLOGY)
    assert stat.apology and stat.answer_s is None and stat.first_audio_s == pytest.approx(1.0)
